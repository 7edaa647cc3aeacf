/**
 * SQL for the test harness through the project's own client, so that no `psql` is needed (the
 * embedded PostgreSQL packages ship only initdb, pg_ctl and postgres).
 *
 * Behaves like `psql -XAtq -v ON_ERROR_STOP=1 -f -`: the input is split into statements the way psql
 * splits it and each one is sent on its own (so every statement commits by itself and commands that
 * refuse transaction blocks work), the rows of every statement are printed one per line with columns
 * joined by "|" and NULL as an empty string, and the first error stops the rest.
 */
import { PgConnection } from "../../src/connection/connection.js";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";

export interface SqlTarget {
  /** A unix-socket directory or 127.0.0.1. */
  host: string;
  port: number;
  user: string;
  database?: string;
  /** Seconds (default 10). */
  connectTimeoutS?: number;
}

/** A statement failed: carries the server's SQLSTATE and the statement that failed. */
export class SqlStatementError extends Error {
  constructor(
    message: string,
    readonly code: string | undefined,
    readonly statement: string,
    options: { cause: unknown },
  ) {
    super(message, options);
    this.name = "SqlStatementError";
  }
}

/** Opens a superuser-style session (no TLS, no password) to `target`. The caller closes it. */
export function connectForSql(target: SqlTarget): Promise<PgConnection> {
  const settings = resolveConnectionSettings({
    overrides: {
      host: target.host,
      port: String(target.port),
      user: target.user,
      dbname: target.database ?? "postgres",
      sslmode: "disable",
      connect_timeout: String(target.connectTimeoutS ?? 10),
      application_name: "pgwal-test-harness",
    },
    env: {},
  });
  // NOTICEs (e.g. "relation already exists, skipping") go nowhere, as with psql -q's stderr ignored.
  return PgConnection.connect(settings, { onNotice: () => {} });
}

/** Runs every statement of `sql` on `connection` in order; returns psql -At's output, trimmed. */
export async function runStatements(connection: PgConnection, sql: string): Promise<string> {
  const lines: string[] = [];
  for (const statement of splitSqlStatements(sql)) {
    let results: Awaited<ReturnType<PgConnection["query"]>>;
    try {
      results = await connection.query(statement);
    } catch (error) {
      const code = Reflect.get(Object(error), "code");
      const detail = error instanceof Error ? error.message : String(error);
      throw new SqlStatementError(
        `${detail}\n  statement: ${statement.length > 500 ? `${statement.slice(0, 500)}…` : statement}`,
        typeof code === "string" ? code : undefined,
        statement,
        { cause: error },
      );
    }
    for (const result of results) {
      // psql prints the rows of every statement that returns a result set, even of a later one.
      if (result.fields.length === 0) continue;
      for (const row of result.rows) lines.push(row.map((value) => value ?? "").join("|"));
    }
  }
  return lines.join("\n").trim();
}

/** How long runSql waits for all statements (the harness gave psql the same 2 minutes). */
const SQL_TIMEOUT_MS = 120_000;

/** Connects, runs `sql` like `psql -XAtq -v ON_ERROR_STOP=1 -f -`, disconnects. */
export async function runSql(target: SqlTarget, sql: string, timeoutMs = SQL_TIMEOUT_MS): Promise<string> {
  const connection = await connectForSql(target);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      // Dropping the socket makes the pending query fail too; the server ends the backend.
      connection.destroy();
      reject(new Error(`SQL did not finish within ${timeoutMs} ms: ${sql.slice(0, 200)}`));
    }, timeoutMs);
  });
  try {
    return await Promise.race([runStatements(connection, sql), timeout]);
  } finally {
    clearTimeout(timer);
    await connection.close();
  }
}

const IDENTIFIER_START = /[A-Za-z_\u0080-\uffff]/;
const IDENTIFIER_PART = /[A-Za-z0-9_$\u0080-\uffff]/;

/**
 * Splits SQL text into statements at semicolons that are outside quotes, dollar quotes, comments
 * and parentheses, as psql does. Statements holding nothing but whitespace and comments are dropped;
 * each statement keeps its own text (including comments) but not the terminating semicolon.
 */
export function splitSqlStatements(sql: string): string[] {
  const statements: string[] = [];
  let start = 0;
  let depth = 0;
  let meaningful = false;
  let i = 0;
  const finish = (end: number): void => {
    const text = sql.slice(start, end).trim();
    if (meaningful && text !== "") statements.push(text);
    meaningful = false;
  };
  while (i < sql.length) {
    const c = sql[i] as string;
    const next = sql[i + 1];
    if (c === "-" && next === "-") {
      const end = sql.indexOf("\n", i);
      i = end === -1 ? sql.length : end + 1;
      continue;
    }
    if (c === "/" && next === "*") {
      i = skipBlockComment(sql, i);
      continue;
    }
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    meaningful = true;
    if (c === "'") {
      // E'…' (also e'…') allows backslash escapes; a plain literal only doubles quotes.
      const previous = sql[i - 1];
      const escapes = (previous === "E" || previous === "e") && !IDENTIFIER_PART.test(sql[i - 2] ?? " ");
      i = skipQuoted(sql, i, "'", escapes);
      continue;
    }
    if (c === '"') {
      i = skipQuoted(sql, i, '"', false);
      continue;
    }
    if (c === "$") {
      const tag = dollarTagAt(sql, i);
      if (tag !== undefined) {
        const close = sql.indexOf(tag, i + tag.length);
        i = close === -1 ? sql.length : close + tag.length;
        continue;
      }
      i++;
      continue;
    }
    if (IDENTIFIER_START.test(c)) {
      // Whole identifiers, so that a "$" inside one (a$b$) is never taken for a dollar quote.
      i++;
      while (i < sql.length && IDENTIFIER_PART.test(sql[i] as string)) i++;
      continue;
    }
    if (c === "(") depth++;
    else if (c === ")") depth = Math.max(0, depth - 1);
    else if (c === ";" && depth === 0) {
      finish(i);
      start = i + 1;
    }
    i++;
  }
  finish(sql.length);
  return statements;
}

/** Index after a (nested) block comment starting at `from`. */
function skipBlockComment(sql: string, from: number): number {
  let nesting = 0;
  let i = from;
  while (i < sql.length) {
    if (sql.startsWith("/*", i)) {
      nesting++;
      i += 2;
    } else if (sql.startsWith("*/", i)) {
      nesting--;
      i += 2;
      if (nesting === 0) return i;
    } else {
      i++;
    }
  }
  return sql.length;
}

/** Index after a quoted string or identifier starting at `from` ('' or "" stand for the quote). */
function skipQuoted(sql: string, from: number, quote: string, backslashEscapes: boolean): number {
  let i = from + 1;
  while (i < sql.length) {
    const c = sql[i];
    if (backslashEscapes && c === "\\") {
      i += 2;
    } else if (c === quote) {
      if (sql[i + 1] === quote) i += 2;
      else return i + 1;
    } else {
      i++;
    }
  }
  return sql.length;
}

/** The dollar-quote opener ($$ or $tag$) at `from`, if there is one ($1 is a parameter, not a quote). */
function dollarTagAt(sql: string, from: number): string | undefined {
  let i = from + 1;
  if (sql[i] === "$") return "$$";
  if (!IDENTIFIER_START.test(sql[i] ?? "")) return undefined;
  while (i < sql.length && /[A-Za-z0-9_\u0080-\uffff]/.test(sql[i] as string)) i++;
  return sql[i] === "$" ? sql.slice(from, i + 1) : undefined;
}
