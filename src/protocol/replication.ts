import { ProtocolError } from "../errors.js";
import type { Lsn } from "../lsn.js";
import { BodyReader } from "./body-reader.js";
import { Frontend } from "./message-types.js";

/*
 * Messages of the streaming replication sub-protocol, carried inside CopyData. `payload` below is
 * always a CopyData body, starting with the sub-message type byte.
 */

export const XLOG_DATA = 0x77; // 'w'
export const PRIMARY_KEEPALIVE = 0x6b; // 'k'
export const STANDBY_STATUS_UPDATE = 0x72; // 'r'

/** Bytes before the WAL data in an XLogData payload: type, start, end, server time. */
export const XLOG_DATA_HEADER_LENGTH = 1 + 8 + 8 + 8;
const PRIMARY_KEEPALIVE_LENGTH = 1 + 8 + 8 + 1;
const STANDBY_STATUS_UPDATE_LENGTH = 1 + 8 + 8 + 8 + 8 + 1;
const MAX_LSN = 0xffff_ffff_ffff_ffffn;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

function expectSubtype(reader: BodyReader, expected: number): void {
  const type = reader.uint8("message type");
  if (type !== expected) {
    throw reader.fail(`starts with 0x${type.toString(16)}, expected 0x${expected.toString(16)}`);
  }
}

export interface XLogData {
  /** WAL position of the first byte of `data`. */
  start: Lsn;
  /** Current end of WAL on the server. */
  end: Lsn;
  /** Server clock at send time, microseconds since 2000-01-01 UTC. */
  serverTime: bigint;
  /** The WAL bytes: a view of the payload, valid as long as the payload is. */
  data: Buffer;
}

export function parseXLogData(payload: Buffer): XLogData {
  const reader = new BodyReader(payload, "XLogData");
  expectSubtype(reader, XLOG_DATA);
  const start = reader.uint64("start position");
  const end = reader.uint64("end of WAL");
  const serverTime = reader.int64("server time");
  const data = reader.rest();
  if (start + BigInt(data.length) > MAX_LSN + 1n) throw reader.fail("data runs past the largest LSN");
  return { start, end, serverTime, data };
}

export interface PrimaryKeepalive {
  end: Lsn;
  serverTime: bigint;
  /** The server wants a status update now (it is about to time us out). */
  replyRequested: boolean;
}

export function parsePrimaryKeepalive(payload: Buffer): PrimaryKeepalive {
  const reader = new BodyReader(payload, "primary keepalive");
  if (payload.length !== PRIMARY_KEEPALIVE_LENGTH) {
    throw reader.fail(`${payload.length} bytes, expected ${PRIMARY_KEEPALIVE_LENGTH}`);
  }
  expectSubtype(reader, PRIMARY_KEEPALIVE);
  const end = reader.uint64("end of WAL");
  const serverTime = reader.int64("server time");
  // Read as a C bool, like the server's own receivers: any non-zero byte means yes.
  const replyRequested = reader.uint8("reply requested") !== 0;
  return { end, serverTime, replyRequested };
}

export interface StandbyStatus {
  /** Last WAL position received (and handed to storage). */
  write: Lsn;
  /** Last position made durable; 0 (InvalidXLogRecPtr) when not reported. */
  flush: Lsn;
  /** Last position applied; always 0 for a WAL receiver that does not replay. */
  apply: Lsn;
  /** Client clock, microseconds since 2000-01-01 UTC. */
  clientTime: bigint;
  replyRequested: boolean;
}

function checkLsn(lsn: Lsn, what: string): void {
  // Arguments come from our own bookkeeping, so a bad one is a bug: RangeError, not ProtocolError.
  if (lsn < 0n || lsn > MAX_LSN) throw new RangeError(`${what} LSN out of range: ${lsn}`);
}

/** The complete CopyData message carrying a standby status update, in one allocation. */
export function standbyStatusUpdateMessage(status: StandbyStatus): Buffer {
  checkLsn(status.write, "write");
  checkLsn(status.flush, "flush");
  checkLsn(status.apply, "apply");
  if (status.clientTime < MIN_INT64 || status.clientTime > MAX_INT64) {
    throw new RangeError(`client time out of range: ${status.clientTime}`);
  }
  const message = Buffer.allocUnsafe(5 + STANDBY_STATUS_UPDATE_LENGTH);
  message[0] = Frontend.CopyData;
  message.writeInt32BE(4 + STANDBY_STATUS_UPDATE_LENGTH, 1);
  message[5] = STANDBY_STATUS_UPDATE;
  // DataView's 64-bit setters are V8 built-ins; Buffer's split the BigInt in JavaScript. This
  // message goes out after every fsync of a synchronous standby.
  const view = new DataView(message.buffer, message.byteOffset, message.length);
  view.setBigUint64(6, status.write);
  view.setBigUint64(14, status.flush);
  view.setBigUint64(22, status.apply);
  view.setBigInt64(30, status.clientTime);
  message[38] = status.replyRequested ? 1 : 0;
  return message;
}

export function parseStandbyStatusUpdate(payload: Buffer): StandbyStatus {
  const reader = new BodyReader(payload, "standby status update");
  if (payload.length !== STANDBY_STATUS_UPDATE_LENGTH) {
    throw reader.fail(`${payload.length} bytes, expected ${STANDBY_STATUS_UPDATE_LENGTH}`);
  }
  expectSubtype(reader, STANDBY_STATUS_UPDATE);
  return {
    write: reader.uint64("write position"),
    flush: reader.uint64("flush position"),
    apply: reader.uint64("apply position"),
    clientTime: reader.int64("client time"),
    replyRequested: reader.uint8("reply requested") !== 0,
  };
}

/** 2000-01-01T00:00:00Z in Unix milliseconds: PostgreSQL's timestamp epoch. */
export const PG_EPOCH_UNIX_MS = 946684800000;
const PG_EPOCH_UNIX_US = BigInt(PG_EPOCH_UNIX_MS) * 1000n;
/** Date's range is ±8.64e15 ms around the Unix epoch. */
const MAX_DATE_MS = 8.64e15;

/** Microseconds since 2000-01-01 UTC, as the protocol's TimestampTz. Sub-millisecond input is rounded. */
export function pgTimestampFromDate(date: Date | number): bigint {
  const unixMs = typeof date === "number" ? date : date.getTime();
  if (!Number.isFinite(unixMs)) throw new RangeError(`invalid time: ${unixMs}`);
  // Split off whole milliseconds first so large values keep their exactness as bigint.
  const wholeMs = Math.floor(unixMs);
  const extraUs = Math.round((unixMs - wholeMs) * 1000);
  return BigInt(wholeMs) * 1000n + BigInt(extraUs) - PG_EPOCH_UNIX_US;
}

/** The Date for a protocol timestamp, truncated to milliseconds (towards the past). */
export function dateFromPgTimestamp(ts: bigint): Date {
  const unixUs = ts + PG_EPOCH_UNIX_US;
  // Floor division: bigint division truncates towards zero, wrong for times before 1970.
  let unixMs = unixUs / 1000n;
  if (unixMs * 1000n > unixUs) unixMs -= 1n;
  if (unixMs > BigInt(MAX_DATE_MS) || unixMs < -BigInt(MAX_DATE_MS)) {
    // Includes PostgreSQL's ±infinity encodings (the int64 extremes).
    throw new ProtocolError(`timestamp ${ts} is outside the representable date range`);
  }
  return new Date(Number(unixMs));
}

/**
 * The clock as a protocol timestamp, in one BigInt conversion: whole milliseconds since 2000 times
 * 1000 stay far below 2^53, so the Number arithmetic is exact. A synchronous standby sends this
 * after every fsync.
 */
export function pgTimestampNow(): bigint {
  return BigInt((Date.now() - PG_EPOCH_UNIX_MS) * 1000);
}

export interface TimelineHistoryEntry {
  /** A parent timeline. */
  timeline: number;
  /** Where the server switched away from `timeline` to the next one. */
  switchpoint: Lsn;
  reason: string;
}

// "<tli> <hi>/<lo> <reason>": the server writes tabs; any whitespace is accepted as it is when read back.
// Lines are trimmed first, so the reason needs no trailing-space handling (which would backtrack).
const HISTORY_LINE = /^(\d+)\s+([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})(?:\s+([\s\S]*))?$/;
const MAX_TIMELINE = 0xffff_ffff;

/**
 * Entries of a `NNNNNNNN.history` file (one per ancestor timeline, oldest first). Blank lines and
 * lines starting with '#' are skipped. Throws ProtocolError on a malformed line or when timelines
 * do not strictly increase.
 */
export function parseTimelineHistory(text: string): TimelineHistoryEntry[] {
  const entries: TimelineHistoryEntry[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === "" || line.startsWith("#")) continue;
    const match = HISTORY_LINE.exec(line);
    const where = `timeline history line ${i + 1}`;
    if (!match) throw new ProtocolError(`${where} is malformed: ${JSON.stringify(line.slice(0, 200))}`);
    const timeline = Number(match[1]);
    if (timeline < 1 || timeline > MAX_TIMELINE) {
      throw new ProtocolError(`${where}: timeline ${match[1]} is out of range`);
    }
    const previous = entries.at(-1);
    if (previous !== undefined && timeline <= previous.timeline) {
      throw new ProtocolError(`${where}: timeline ${timeline} does not follow ${previous.timeline}`);
    }
    const switchpoint = (BigInt(`0x${match[2]}`) << 32n) | BigInt(`0x${match[3]}`);
    entries.push({ timeline, switchpoint, reason: match[4] ?? "" });
  }
  return entries;
}
