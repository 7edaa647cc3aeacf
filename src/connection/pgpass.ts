/**
 * Password file lookup with libpq's rules (passwordFromFile in fe-connect.c, docs "The Password File").
 *
 * Lines are host:port:database:username:password. In the first four fields "*" alone matches
 * anything; "\:" and "\\" stand for ":" and "\". The first matching line wins. Lines starting with
 * "#" are comments. The password ends at the next unescaped ":" (further fields are ignored).
 */
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { isDefaultSocketDir } from "./conninfo.js";

export interface PgpassLookup {
  /**
   * The target's host as given (host name, IP, or socket directory), or hostaddr when no host was
   * given. "" and the default socket directory are looked up as "localhost".
   */
  host: string;
  port: number;
  /**
   * The database name of the connection. Physical replication connections use "replication", which
   * is how a .pgpass line with database "replication" matches them.
   */
  dbname: string;
  user: string;
}

/**
 * Matches one field at the start of `line` against `wanted`. Returns the rest of the line after the
 * field's ":" separator, or undefined when the field does not match.
 */
function matchField(line: string, wanted: string): string | undefined {
  if (line.startsWith("*:")) return line.slice(2);
  let i = 0;
  let j = 0;
  while (i < line.length) {
    let escaped = false;
    if (line[i] === "\\") {
      i++;
      escaped = true;
      if (i >= line.length) return undefined;
    }
    if (line[i] === ":" && !escaped && j === wanted.length) return line.slice(i + 1);
    if (j === wanted.length || line[i] !== wanted[j]) return undefined;
    i++;
    j++;
  }
  return undefined;
}

/** The password field: up to the first unescaped ":", with escapes removed. */
function readPassword(rest: string): string {
  let password = "";
  for (let i = 0; i < rest.length && rest[i] !== ":"; i++) {
    if (rest[i] === "\\" && i + 1 < rest.length) i++;
    password += rest[i];
  }
  return password;
}

/**
 * The password for `key` from the password file `file`, or undefined when the file is missing,
 * unusable, or has no matching line. A file that is not a regular file, or that is readable or
 * writable by group or others, is ignored, with libpq's warning passed to `onWarning`.
 */
export async function lookupPgpass(
  file: string,
  key: PgpassLookup,
  onWarning?: (message: string) => void,
): Promise<string | undefined> {
  if (key.dbname === "" || key.user === "") return undefined;
  const host = key.host === "" || isDefaultSocketDir(key.host) ? "localhost" : key.host;
  const port = String(key.port);

  let handle: Awaited<ReturnType<typeof open>>;
  try {
    // O_NONBLOCK so that a FIFO put in place of the file cannot hang us before the type check.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) {
      onWarning?.(`password file "${file}" is not a plain file`);
      return undefined;
    }
    if (process.platform !== "win32" && (stats.mode & 0o077) !== 0) {
      onWarning?.(
        `password file "${file}" has group or world access; permissions should be u=rw (0600) or less`,
      );
      return undefined;
    }
    const text = await handle.readFile("utf8");
    for (const rawLine of text.split("\n")) {
      const line = rawLine.replace(/\r+$/, "");
      if (line === "" || line.startsWith("#")) continue;
      let rest = matchField(line, host);
      if (rest !== undefined) rest = matchField(rest, port);
      if (rest !== undefined) rest = matchField(rest, key.dbname);
      if (rest !== undefined) rest = matchField(rest, key.user);
      if (rest !== undefined) return readPassword(rest);
    }
    return undefined;
  } catch {
    // libpq ignores a file it cannot read.
    return undefined;
  } finally {
    await handle.close();
  }
}
