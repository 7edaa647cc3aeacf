import { ProtocolError, ServerError } from "../errors.js";
import { formatLsn, type Lsn, tryParseLsn } from "../lsn.js";
import { escapeControlCharacters } from "../protocol/untrusted-text.js";
import { historyFileName } from "../wal/names.js";
import type { PgConnection, QueryResult } from "./connection.js";

/**
 * The replication commands pgwal uses, each with a typed result. They run on a connection opened
 * with replication=true (physical), which accepts only the simple query protocol.
 */

export interface SystemIdentity {
  /** Unique cluster identifier (pg_control's system_identifier), as a decimal string's value. */
  systemId: bigint;
  timeline: number;
  /** Current WAL flush location of the server (write location on a standby). */
  xlogpos: Lsn;
  /** Database name: null on a physical replication connection. */
  dbname: string | null;
}

/** Identifier used in replication commands, quoted so any slot name round-trips. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

function singleRow(results: QueryResult[], command: string, columns: number): (string | null)[] {
  const result = results.find((r) => r.fields.length > 0);
  if (result?.rows.length !== 1 || result.fields.length < columns) {
    throw new ProtocolError(
      `could not ${command}: got ${result?.rows.length ?? 0} rows and ${result?.fields.length ?? 0} fields, expected 1 rows and ${columns} or more fields`,
    );
  }
  return result.rows[0]!;
}

/** A server value for a message: quoted, control characters escaped. */
function shown(value: string | null | undefined): string {
  return value === null || value === undefined ? "NULL" : `"${escapeControlCharacters(value)}"`;
}

function lsnField(value: string | null, what: string): Lsn {
  const lsn = value === null ? undefined : tryParseLsn(value);
  if (lsn === undefined) throw new ProtocolError(`could not parse ${what} ${shown(value)}`);
  return lsn;
}

function intField(value: string | null, what: string): number {
  const n = value === null || !/^\d+$/.test(value) ? Number.NaN : Number(value);
  if (!Number.isSafeInteger(n)) throw new ProtocolError(`could not parse ${what} ${shown(value)}`);
  return n;
}

/** Timeline IDs are unsigned 32-bit and never 0; anything else cannot name a WAL file. */
const MAX_TIMELINE = 0xffff_ffff;

/** A timeline from a result row: a ProtocolError (the server's fault, worth a reconnect) when impossible. */
function timelineField(value: string | null, what: string, where: string): number {
  const timeline = intField(value, what);
  if (timeline < 1 || timeline > MAX_TIMELINE) {
    throw new ProtocolError(
      `server reported invalid ${what} ${timeline} in ${where} (expected 1 to ${MAX_TIMELINE})`,
    );
  }
  return timeline;
}

export async function identifySystem(conn: PgConnection): Promise<SystemIdentity> {
  const row = singleRow(await conn.query("IDENTIFY_SYSTEM"), "identify system", 3);
  if (row[0] === null || !/^\d+$/.test(row[0]))
    throw new ProtocolError(`could not parse system identifier ${shown(row[0])}`);
  return {
    systemId: BigInt(row[0]),
    timeline: timelineField(row[1] ?? null, "timeline", "IDENTIFY_SYSTEM"),
    xlogpos: lsnField(row[2] ?? null, "write-ahead log location"),
    dbname: row[3] ?? null,
  };
}

export async function showSetting(conn: PgConnection, name: string): Promise<string> {
  const row = singleRow(await conn.query(`SHOW ${name}`), `fetch setting ${name}`, 1);
  if (row[0] === null) throw new ProtocolError(`setting ${name} is NULL`);
  return row[0];
}

/** Parses SHOW wal_segment_size output ("16MB", "1GB", "1048576kB" …) into bytes. */
export function parseMemorySetting(text: string): number {
  const match = /^(\d+)\s*(B|kB|MB|GB|TB)?$/.exec(text.trim());
  if (!match) throw new ProtocolError(`could not parse memory setting ${shown(text)}`);
  const unit = { B: 1, kB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 }[match[2] ?? "B"]!;
  return Number(match[1]) * unit;
}

export interface ReplicationSlotInfo {
  slotType: "physical" | "logical";
  restartLsn: Lsn | undefined;
  restartTimeline: number | undefined;
}

/**
 * READ_REPLICATION_SLOT (PostgreSQL 15+). Returns undefined when the slot does not exist (the
 * server then answers a row of NULLs).
 */
export async function readReplicationSlot(
  conn: PgConnection,
  slot: string,
): Promise<ReplicationSlotInfo | undefined> {
  const row = singleRow(
    await conn.query(`READ_REPLICATION_SLOT ${quoteIdentifier(slot)}`),
    "read replication slot",
    3,
  );
  if (row[0] === null) return undefined;
  if (row[0] !== "physical" && row[0] !== "logical")
    throw new ProtocolError(`unknown slot type ${shown(row[0])}`);
  return {
    slotType: row[0],
    restartLsn: row[1] === null ? undefined : lsnField(row[1] ?? null, "restart_lsn"),
    restartTimeline:
      row[2] === null ? undefined : timelineField(row[2] ?? null, "timeline", "READ_REPLICATION_SLOT"),
  };
}

export interface CreateSlotOptions {
  /** Reserve WAL at once (pg_receivewal does not; pg_basebackup does). */
  reserveWal?: boolean;
  /** Succeed when the slot already exists (--if-not-exists). */
  ifNotExists?: boolean;
}

/** SQLSTATE duplicate_object: the slot already exists. */
const DUPLICATE_OBJECT = "42710";

/** Creates a physical slot with the syntax the server speaks (options list from 15). Returns false if it already existed. */
export async function createPhysicalSlot(
  conn: PgConnection,
  slot: string,
  options: CreateSlotOptions = {},
): Promise<boolean> {
  let sql = `CREATE_REPLICATION_SLOT ${quoteIdentifier(slot)} PHYSICAL`;
  if (options.reserveWal) sql += conn.serverVersionNum >= 150000 ? " (RESERVE_WAL)" : " RESERVE_WAL";
  try {
    await conn.query(sql);
    return true;
  } catch (error) {
    if (options.ifNotExists && error instanceof ServerError && error.code === DUPLICATE_OBJECT) return false;
    throw error;
  }
}

/** Drops a slot; `wait` waits for an active walsender to release it instead of failing. */
export async function dropSlot(
  conn: PgConnection,
  slot: string,
  options: { wait?: boolean } = {},
): Promise<void> {
  await conn.query(`DROP_REPLICATION_SLOT ${quoteIdentifier(slot)}${options.wait ? " WAIT" : ""}`);
}

export interface TimelineHistoryFile {
  /** The name pgwal computes for the timeline (the server's answer has been checked against it). */
  fileName: string;
  content: Buffer;
}

/**
 * The server's name for a timeline's history file must be the one pgwal computes, as
 * pg_receivewal checks: the name is used for a file and handed to hooks, so a made-up name
 * (a path, shell syntax) stops here. Returns the computed name.
 */
export function checkHistoryFileName(timeline: number, reported: string): string {
  const expected = historyFileName(timeline);
  if (reported !== expected) {
    throw new ProtocolError(
      `server reported unexpected history file name for timeline ${timeline}: ${escapeControlCharacters(reported)}`,
    );
  }
  return expected;
}

export async function timelineHistory(conn: PgConnection, timeline: number): Promise<TimelineHistoryFile> {
  const row = singleRow(await conn.query(`TIMELINE_HISTORY ${timeline}`), "fetch timeline history file", 2);
  if (row[0] === null || row[1] === null) throw new ProtocolError("timeline history file is NULL");
  return { fileName: checkHistoryFileName(timeline, row[0]!), content: Buffer.from(row[1]!, "utf8") };
}

export interface StartReplicationOptions {
  slot?: string;
  start: Lsn;
  timeline: number;
}

/** START_REPLICATION [SLOT s] PHYSICAL X/Y TIMELINE n; the connection is in CopyBoth mode after it. */
export async function startReplication(conn: PgConnection, options: StartReplicationOptions): Promise<void> {
  const slot = options.slot !== undefined ? `SLOT ${quoteIdentifier(options.slot)} ` : "";
  await conn.startCopyBoth(
    `START_REPLICATION ${slot}PHYSICAL ${formatLsn(options.start)} TIMELINE ${options.timeline}`,
  );
}

/** What ended a replication stream. */
export type StreamEnd =
  /** The server finished a timeline: continue on `timeline` from `start`. */
  | { kind: "timeline-end"; timeline: number; start: Lsn }
  /** The stream stopped at our request (or the server ended it without a next timeline). */
  | { kind: "stopped" };

/** Interprets the result sent after CopyDone: a (next_tli, next_tli_startpos) row on a timeline switch. */
export function streamEndFromResults(results: QueryResult[]): StreamEnd {
  const tuples = results.find((r) => r.fields.length > 0);
  if (tuples === undefined) return { kind: "stopped" };
  if (tuples.rows.length !== 1 || tuples.fields.length < 2) {
    throw new ProtocolError(
      `unexpected result set after end-of-timeline: got ${tuples.rows.length} rows and ${tuples.fields.length} fields, expected 1 rows and 2 fields`,
    );
  }
  const row = tuples.rows[0]!;
  return {
    kind: "timeline-end",
    timeline: timelineField(row[0] ?? null, "next timeline", "the end-of-streaming result"),
    start: lsnField(row[1] ?? null, "next timeline's starting point"),
  };
}
