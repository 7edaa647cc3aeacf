import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError } from "../../src/errors.js";
import {
  dateFromPgTimestamp,
  PG_EPOCH_UNIX_MS,
  PRIMARY_KEEPALIVE,
  parsePrimaryKeepalive,
  parseStandbyStatusUpdate,
  parseTimelineHistory,
  parseXLogData,
  pgTimestampFromDate,
  pgTimestampNow,
  STANDBY_STATUS_UPDATE,
  standbyStatusUpdateMessage,
  XLOG_DATA,
  XLOG_DATA_HEADER_LENGTH,
} from "../../src/protocol/replication.js";
import { keepalivePayload, xlogDataPayload } from "../support/backend-builders.js";
import { assertProtocolError, hex } from "../support/protocol-asserts.js";

const MAX_U64 = 0xffff_ffff_ffff_ffffn;
const MAX_I64 = 0x7fff_ffff_ffff_ffffn;

test("sub-message type bytes", () => {
  assert.equal(String.fromCharCode(XLOG_DATA, PRIMARY_KEEPALIVE, STANDBY_STATUS_UPDATE), "wkr");
  assert.equal(XLOG_DATA_HEADER_LENGTH, 25);
});

// --- XLogData ---

test("XLogData: positions, server time and the data as a view", () => {
  const payload = hex("77 0000000100000000 0000000100000100 0000000000003039 deadbeef");
  const parsed = parseXLogData(payload);
  assert.deepEqual(parsed, {
    start: 0x1_0000_0000n,
    end: 0x1_0000_0100n,
    serverTime: 12345n,
    data: hex("deadbeef"),
  });
  assert.equal(parsed.data.byteOffset, payload.byteOffset + 25);
  payload[25] = 0;
  assert.equal(parsed.data[0], 0, "data is a view of the payload");
  assert.deepEqual(
    xlogDataPayload(0x1_0000_0000n, 0x1_0000_0100n, 12345n, hex("deadbeef")),
    hex("77 0000000100000000 0000000100000100 0000000000003039 deadbeef"),
  );
});

test("XLogData: unsigned positions, signed time, empty data", () => {
  const parsed = parseXLogData(xlogDataPayload(MAX_U64, MAX_U64, -1n, Buffer.alloc(0)));
  assert.deepEqual(parsed, { start: MAX_U64, end: MAX_U64, serverTime: -1n, data: Buffer.alloc(0) });
  const last = parseXLogData(xlogDataPayload(MAX_U64 - 3n, 0n, 0n, hex("01020304")));
  assert.equal(last.start, MAX_U64 - 3n);
});

test("XLogData: short header, wrong type, or data past the last LSN are protocol errors", () => {
  const valid = xlogDataPayload(16n, 32n, 0n, hex("00"));
  for (let length = 0; length < XLOG_DATA_HEADER_LENGTH; length++) {
    assertProtocolError(() => parseXLogData(valid.subarray(0, length)));
  }
  assertProtocolError(() => parseXLogData(keepalivePayload(1n, 1n)), /0x6b, expected 0x77/);
  assertProtocolError(
    () => parseXLogData(xlogDataPayload(MAX_U64 - 2n, 0n, 0n, hex("01020304"))),
    /largest LSN/,
  );
});

// --- Primary keepalive ---

test("keepalive: exactly 18 bytes; any non-zero reply byte requests a reply", () => {
  assert.deepEqual(parsePrimaryKeepalive(hex("6b 00000016b374d848 0000000000000001 01")), {
    end: 0x16_b374_d848n,
    serverTime: 1n,
    replyRequested: true,
  });
  assert.deepEqual(
    keepalivePayload(0x16_b374_d848n, 1n, true),
    hex("6b 00000016b374d848 0000000000000001 01"),
  );
  assert.equal(parsePrimaryKeepalive(keepalivePayload(5n, 5n, false)).replyRequested, false);
  assert.equal(parsePrimaryKeepalive(hex("6b 0000000000000000 0000000000000000 02")).replyRequested, true);
  const valid = keepalivePayload(5n, -5n, false);
  assert.equal(parsePrimaryKeepalive(valid).serverTime, -5n);
  for (let length = 0; length < valid.length; length++) {
    assertProtocolError(() => parsePrimaryKeepalive(valid.subarray(0, length)), /expected 18/);
  }
  assertProtocolError(
    () => parsePrimaryKeepalive(Buffer.concat([valid, hex("00")])),
    /19 bytes, expected 18/,
  );
  assertProtocolError(() => parsePrimaryKeepalive(Buffer.concat([hex("77"), valid.subarray(1)])), /0x77/);
});

// --- Standby status update ---

test("standby status update: the complete CopyData message, byte for byte", () => {
  const message = standbyStatusUpdateMessage({
    write: 0x16_b374_d848n,
    flush: 0x16_b374_0000n,
    apply: 0n,
    clientTime: 0x0102_0304_0506_0708n,
    replyRequested: false,
  });
  assert.deepEqual(
    message,
    hex("64 00000026 72 00000016b374d848 00000016b3740000 0000000000000000 0102030405060708 00"),
  );
  assert.equal(message.length, 39);
  assert.equal(message.readInt32BE(1), message.length - 1);
});

test("standby status update round-trips, including extremes", () => {
  const cases = [
    { write: 0n, flush: 0n, apply: 0n, clientTime: 0n, replyRequested: false },
    { write: MAX_U64, flush: MAX_U64, apply: MAX_U64, clientTime: MAX_I64, replyRequested: true },
    { write: 1n, flush: 2n, apply: 3n, clientTime: -MAX_I64 - 1n, replyRequested: true },
  ];
  for (const status of cases) {
    assert.deepEqual(parseStandbyStatusUpdate(standbyStatusUpdateMessage(status).subarray(5)), status);
  }
});

test("standby status update rejects out-of-range arguments (our bug) and malformed payloads", () => {
  const base = { write: 0n, flush: 0n, apply: 0n, clientTime: 0n, replyRequested: false };
  assert.throws(() => standbyStatusUpdateMessage({ ...base, write: -1n }), RangeError);
  assert.throws(() => standbyStatusUpdateMessage({ ...base, flush: MAX_U64 + 1n }), RangeError);
  assert.throws(() => standbyStatusUpdateMessage({ ...base, apply: -1n }), RangeError);
  assert.throws(() => standbyStatusUpdateMessage({ ...base, clientTime: MAX_I64 + 1n }), RangeError);
  const payload = standbyStatusUpdateMessage(base).subarray(5);
  assertProtocolError(() => parseStandbyStatusUpdate(payload.subarray(0, 33)), /expected 34/);
  assertProtocolError(
    () => parseStandbyStatusUpdate(Buffer.concat([hex("6b"), payload.subarray(1)])),
    /0x6b/,
  );
});

// --- Timestamps ---

test("PostgreSQL's epoch is 2000-01-01 UTC: Unix ms 946684800000 is timestamp 0", () => {
  assert.equal(PG_EPOCH_UNIX_MS, Date.UTC(2000, 0, 1));
  assert.equal(pgTimestampFromDate(946684800000), 0n);
  assert.equal(pgTimestampFromDate(new Date("2000-01-01T00:00:00Z")), 0n);
  assert.equal(pgTimestampFromDate(946684800001), 1000n);
  assert.equal(pgTimestampFromDate(946684799999), -1000n);
  assert.equal(pgTimestampFromDate(0), -946684800000000n);
  assert.equal(pgTimestampFromDate(new Date("2024-02-29T12:34:56.789Z")), 762525296789000n);
  assert.equal(dateFromPgTimestamp(0n).toISOString(), "2000-01-01T00:00:00.000Z");
  assert.equal(dateFromPgTimestamp(762525296789000n).toISOString(), "2024-02-29T12:34:56.789Z");
});

test("sub-millisecond parts: rounded to microseconds one way, floored to milliseconds the other", () => {
  assert.equal(pgTimestampFromDate(946684800000.5), 500n);
  assert.equal(pgTimestampFromDate(946684800000.0004), 0n);
  assert.equal(pgTimestampFromDate(946684799999.9996), 0n);
  assert.equal(dateFromPgTimestamp(999n).toISOString(), "2000-01-01T00:00:00.000Z");
  assert.equal(dateFromPgTimestamp(-1n).toISOString(), "1999-12-31T23:59:59.999Z");
  assert.equal(dateFromPgTimestamp(-1000n).toISOString(), "1999-12-31T23:59:59.999Z");
  assert.equal(dateFromPgTimestamp(-1001n).toISOString(), "1999-12-31T23:59:59.998Z");
  assert.equal(dateFromPgTimestamp(-946684800000000n).getTime(), 0);
});

test("timestamps outside Date's range: RangeError for bad input, ProtocolError for wire values", () => {
  assert.throws(() => pgTimestampFromDate(Number.NaN), RangeError);
  assert.throws(() => pgTimestampFromDate(new Date("not a date")), RangeError);
  assert.throws(() => pgTimestampFromDate(Number.POSITIVE_INFINITY), RangeError);
  // Date's own limits survive the round trip.
  for (const ms of [8.64e15, -8.64e15]) {
    assert.equal(dateFromPgTimestamp(pgTimestampFromDate(ms)).getTime(), ms);
  }
  assert.throws(() => dateFromPgTimestamp(MAX_I64), ProtocolError); // PostgreSQL's +infinity
  assert.throws(() => dateFromPgTimestamp(-MAX_I64 - 1n), ProtocolError); // -infinity
});

test("pgTimestampNow follows the clock", () => {
  const before = pgTimestampFromDate(Date.now());
  const now = pgTimestampNow();
  const after = pgTimestampFromDate(Date.now());
  assert.ok(before <= now && now <= after);
  assert.ok(now > 700_000_000_000_000n, "after 2022");
});

// --- Timeline history ---

test("timeline history: entries as the server writes them", () => {
  const text = [
    "1\t0/3000000\tno recovery target specified",
    "",
    '2\t1/5000060\tat restore point "before upgrade"',
    "5\tFF/FFFFFFFF\tafter transaction 1234\tand more",
    "",
  ].join("\n");
  assert.deepEqual(parseTimelineHistory(text), [
    { timeline: 1, switchpoint: 0x300_0000n, reason: "no recovery target specified" },
    { timeline: 2, switchpoint: 0x1_0500_0060n, reason: 'at restore point "before upgrade"' },
    { timeline: 5, switchpoint: 0xff_ffff_ffffn, reason: "after transaction 1234\tand more" },
  ]);
});

test("timeline history: comments, blank lines, CRLF, spaces and missing reasons are accepted", () => {
  const text = "# comment\r\n   \r\n  # indented comment\r\n1 0/1\r\n  2\t0/2  \r\n";
  assert.deepEqual(parseTimelineHistory(text), [
    { timeline: 1, switchpoint: 1n, reason: "" },
    { timeline: 2, switchpoint: 2n, reason: "" },
  ]);
  assert.deepEqual(parseTimelineHistory(""), []);
  assert.deepEqual(parseTimelineHistory("\n\n# only comments\n"), []);
});

test("timeline history: malformed lines and non-increasing timelines are protocol errors", () => {
  const bad: [string, RegExp][] = [
    ["x\t0/1\treason", /line 1 is malformed/],
    ["1\t0/Z\treason", /malformed/],
    ["1\t0-1\treason", /malformed/],
    ["1", /malformed/],
    ["1\t0/1\n1\t0/2", /line 2: timeline 1 does not follow 1/],
    ["3\t0/1\n2\t0/2", /timeline 2 does not follow 3/],
    ["0\t0/1", /timeline 0 is out of range/],
    ["4294967296\t0/1", /out of range/],
    ["1\t123456789/0", /malformed/],
    ["-1\t0/1", /malformed/],
  ];
  for (const [text, message] of bad) {
    assertProtocolError(() => parseTimelineHistory(text), message);
  }
  assert.equal(parseTimelineHistory("4294967295\tFFFFFFFF/FFFFFFFF")[0]!.switchpoint, MAX_U64);
});

test("timeline history: a pathological line fails fast (no regex backtracking)", () => {
  const line = `1\t0/1\ta${" ".repeat(200_000)}b${"\t".repeat(200_000)}x`;
  const started = performance.now();
  assert.equal(parseTimelineHistory(line)[0]!.reason.length, 400_003);
  assertProtocolError(() => parseTimelineHistory(`1${" ".repeat(200_000)}0/Z`));
  assert.ok(performance.now() - started < 1000);
});
