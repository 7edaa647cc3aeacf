import assert from "node:assert/strict";
import { test } from "node:test";
import type { ServerErrorFields } from "../../src/errors.js";
import {
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseCopyResponse,
  parseDataRow,
  parseErrorFields,
  parseNegotiateProtocolVersion,
  parseParameterStatus,
  parseReadyForQuery,
  parseRowDescription,
} from "../../src/protocol/backend.js";
import {
  authenticationMd5Password,
  authenticationRequest,
  authenticationSasl,
  authenticationSaslContinue,
  authenticationSaslFinal,
  backendKeyData,
  commandComplete,
  copyBothResponse,
  copyOutResponse,
  dataRow,
  errorResponse,
  INT4_OID,
  negotiateProtocolVersion,
  noticeResponse,
  parameterStatus,
  readyForQuery,
  rowDescription,
} from "../support/backend-builders.js";
import { assertProtocolError, hex } from "../support/protocol-asserts.js";

/** The body of a complete message from a builder. */
const body = (message: Buffer) => message.subarray(5);
const text = (s: string) => Buffer.from(s, "utf8").toString("hex");

// --- Authentication ---

test("Authentication: ok and cleartext password are exactly 4 bytes", () => {
  assert.deepEqual(parseAuthentication(hex("00000000")), { kind: "ok" });
  assert.deepEqual(parseAuthentication(hex("00000003")), { kind: "cleartext-password" });
  assertProtocolError(() => parseAuthentication(hex("00000000 00")), /trailing/);
  assertProtocolError(() => parseAuthentication(hex("00000003 00")), /trailing/);
  assertProtocolError(() => parseAuthentication(hex("000000")), /Authentication.*truncated/);
  assertProtocolError(() => parseAuthentication(Buffer.alloc(0)));
});

test("Authentication: MD5 carries a 4-byte salt, copied out of the message", () => {
  const message = hex("00000005 0a0b0c0d");
  const request = parseAuthentication(message);
  assert.deepEqual(request, { kind: "md5-password", salt: hex("0a0b0c0d") });
  assert.equal(body(authenticationMd5Password(hex("01020304"))).toString("hex"), "0000000501020304");
  message[4] = 0;
  assert.equal(request.kind === "md5-password" && request.salt[0], 0x0a);
  assertProtocolError(() => parseAuthentication(hex("00000005 0a0b0c")), /salt/);
  assertProtocolError(() => parseAuthentication(hex("00000005 0a0b0c0d0e")), /trailing/);
});

test("Authentication: SASL lists mechanisms up to an empty string", () => {
  const vector = hex(`0000000a ${text("SCRAM-SHA-256-PLUS")}00 ${text("SCRAM-SHA-256")}00 00`);
  assert.deepEqual(parseAuthentication(vector), {
    kind: "sasl",
    mechanisms: ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"],
  });
  assert.deepEqual(body(authenticationSasl(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"])), vector);
  assert.deepEqual(parseAuthentication(hex("0000000a 00")), { kind: "sasl", mechanisms: [] });
  assertProtocolError(() => parseAuthentication(hex(`0000000a ${text("SCRAM-SHA-256")}00`)), /terminator/);
  assertProtocolError(() => parseAuthentication(hex(`0000000a ${text("SCRAM")}`)), /NUL/);
  assertProtocolError(() => parseAuthentication(hex("0000000a")));
  assertProtocolError(() => parseAuthentication(hex("0000000a 00 00")), /trailing/);
});

test("Authentication: SASL continue and final carry the rest of the body as a copy", () => {
  const vector = hex(`0000000b ${text("r=abc,s=c2FsdA==,i=4096")}`);
  assert.deepEqual(body(authenticationSaslContinue("r=abc,s=c2FsdA==,i=4096")), vector);
  const request = parseAuthentication(vector);
  assert.deepEqual(request, { kind: "sasl-continue", data: Buffer.from("r=abc,s=c2FsdA==,i=4096") });
  vector[4] = 0; // pooled buffers may share memory, so check ownership by writing
  assert.ok(request.kind === "sasl-continue" && request.data[0] === 0x72);
  assert.deepEqual(parseAuthentication(body(authenticationSaslFinal("v=xyz"))), {
    kind: "sasl-final",
    data: Buffer.from("v=xyz"),
  });
  assert.deepEqual(parseAuthentication(hex("0000000c")), { kind: "sasl-final", data: Buffer.alloc(0) });
});

test("Authentication: other methods are reported as unsupported with a readable name", () => {
  const cases: [number, string][] = [
    [2, "Kerberos V5"],
    [6, "SCM credentials"],
    [7, "GSSAPI"],
    [8, "GSSAPI"],
    [9, "SSPI"],
    [1, "unknown (code 1)"],
    [4, "unknown (code 4)"],
    [13, "unknown (code 13)"],
    [-1, "unknown (code -1)"],
  ];
  for (const [code, method] of cases) {
    assert.deepEqual(parseAuthentication(body(authenticationRequest(code, hex("c0ffee")))), {
      kind: "unsupported",
      code,
      method,
    });
  }
});

// --- ErrorResponse / NoticeResponse ---

const slotMissing = hex(`
  53 ${text("FEHLER")} 00
  56 ${text("ERROR")} 00
  43 ${text("42704")} 00
  4d ${text('replication slot "s" does not exist')} 00
  46 ${text("slot.c")} 00
  4c ${text("507")} 00
  52 ${text("ReplicationSlotAcquire")} 00
  00`);

test("ErrorResponse: fields by meaning, non-localized severity preferred", () => {
  assert.deepEqual(parseErrorFields(slotMissing), {
    severity: "ERROR",
    code: "42704",
    message: 'replication slot "s" does not exist',
    file: "slot.c",
    line: "507",
    routine: "ReplicationSlotAcquire",
  });
});

test("ErrorResponse: severity falls back to S when V is absent (servers before 9.6)", () => {
  const fields = parseErrorFields(
    hex(`53 ${text("FATAL")}00 43 ${text("28P01")}00 4d ${text("auth failed")}00 00`),
  );
  assert.deepEqual(fields, { severity: "FATAL", code: "28P01", message: "auth failed" });
});

test("ErrorResponse: every documented field code is mapped; unknown codes are ignored", () => {
  const all: ServerErrorFields = {
    severity: "ERROR",
    code: "23505",
    message: "duplicate key",
    detail: "Key (id)=(1) already exists.",
    hint: "try another",
    position: "12",
    internalPosition: "3",
    internalQuery: "SELECT 1",
    where: "PL/pgSQL function f()",
    schema: "public",
    table: "t",
    column: "id",
    dataType: "int4",
    constraint: "t_pkey",
    file: "nbtinsert.c",
    line: "666",
    routine: "_bt_check_unique",
  };
  const message = errorResponse({ ...all, localizedSeverity: "ERREUR", raw: [["Z", "future field"]] });
  assert.deepEqual(parseErrorFields(body(message)), all);
  assert.deepEqual(
    parseErrorFields(body(noticeResponse({ severity: "WARNING", code: "01000", message: "w" }))),
    {
      severity: "WARNING",
      code: "01000",
      message: "w",
    },
  );
});

test("ErrorResponse: missing severity, SQLSTATE or message is a protocol error", () => {
  assertProtocolError(() => parseErrorFields(hex(`43 ${text("XX000")}00 4d ${text("m")}00 00`)), /severity/);
  assertProtocolError(() => parseErrorFields(hex(`56 ${text("ERROR")}00 4d ${text("m")}00 00`)), /SQLSTATE/);
  assertProtocolError(
    () => parseErrorFields(hex(`56 ${text("ERROR")}00 43 ${text("XX000")}00 00`)),
    /message/,
  );
  assertProtocolError(() => parseErrorFields(hex("00")));
});

test("ErrorResponse: a missing terminator, unterminated value or trailing byte is a protocol error", () => {
  assertProtocolError(() => parseErrorFields(slotMissing.subarray(0, -1)), /terminator/);
  assertProtocolError(() => parseErrorFields(hex(`56 ${text("ERROR")}`)), /NUL/);
  assertProtocolError(() => parseErrorFields(Buffer.concat([slotMissing, hex("00")])), /trailing/);
  assertProtocolError(() => parseErrorFields(Buffer.alloc(0)));
});

// --- Session messages ---

test("ParameterStatus: name and value", () => {
  const vector = hex(`${text("server_version")}00 ${text("16.2")}00`);
  assert.deepEqual(parseParameterStatus(vector), { name: "server_version", value: "16.2" });
  assert.deepEqual(body(parameterStatus("server_version", "16.2")), vector);
  assert.deepEqual(parseParameterStatus(hex("00 00")), { name: "", value: "" });
  assertProtocolError(() => parseParameterStatus(hex(`${text("server_version")}00`)), /value/);
  assertProtocolError(() => parseParameterStatus(hex("00 00 00")), /trailing/);
});

test("BackendKeyData: process ID and a 4-byte (3.0) or longer (3.2) secret key", () => {
  const parsed = parseBackendKeyData(hex("00003039 deadbeef"));
  assert.deepEqual(parsed, { processId: 12345, secretKey: hex("deadbeef") });
  const longKey = Buffer.alloc(32, 7);
  assert.deepEqual(parseBackendKeyData(body(backendKeyData(99, longKey))), {
    processId: 99,
    secretKey: longKey,
  });
  assert.equal(
    parseBackendKeyData(Buffer.concat([hex("00000001"), Buffer.alloc(256)])).secretKey.length,
    256,
  );
  assertProtocolError(() => parseBackendKeyData(Buffer.concat([hex("00000001"), Buffer.alloc(257)])), /257/);
  assertProtocolError(() => parseBackendKeyData(hex("00003039")), /secret key of 0 bytes/);
  assertProtocolError(() => parseBackendKeyData(hex("000030")), /truncated/);
});

test("ReadyForQuery: I, T or E and nothing else", () => {
  assert.equal(parseReadyForQuery(hex("49")), "I");
  assert.equal(parseReadyForQuery(hex("54")), "T");
  assert.equal(parseReadyForQuery(body(readyForQuery("E"))), "E");
  assertProtocolError(() => parseReadyForQuery(hex("58")), /status 0x58/);
  assertProtocolError(() => parseReadyForQuery(Buffer.alloc(0)));
  assertProtocolError(() => parseReadyForQuery(hex("4949")), /trailing/);
});

// --- Query results ---

const timelineColumn = hex(`0001 ${text("timeline")}00 00000000 0000 00000017 0004 ffffffff 0000`);

test("RowDescription: every attribute of a field, OIDs unsigned", () => {
  assert.deepEqual(parseRowDescription(timelineColumn), [
    {
      name: "timeline",
      tableOid: 0,
      columnNumber: 0,
      typeOid: INT4_OID,
      typeSize: 4,
      typeModifier: -1,
      format: 0,
    },
  ]);
  assert.deepEqual(
    body(rowDescription([{ name: "timeline", typeOid: INT4_OID, typeSize: 4 }])),
    timelineColumn,
  );
  const columns = [
    {
      name: "a",
      tableOid: 0xfffffff0,
      columnNumber: 3,
      typeOid: 0x80000000,
      typeSize: -2,
      typeModifier: 42,
      format: 1,
    },
    { name: "", tableOid: 1, columnNumber: -1, typeOid: 25, typeSize: -1, typeModifier: -1, format: 0 },
  ];
  assert.deepEqual(parseRowDescription(body(rowDescription(columns))), columns);
  assert.deepEqual(parseRowDescription(hex("0000")), []);
});

test("RowDescription: bad counts, short fields and trailing bytes are protocol errors", () => {
  assertProtocolError(() => parseRowDescription(hex("ffff")), /negative field count/);
  assertProtocolError(() => parseRowDescription(Buffer.concat([hex("0002"), timelineColumn.subarray(2)])));
  assertProtocolError(() => parseRowDescription(timelineColumn.subarray(0, -1)), /format code/);
  assertProtocolError(() => parseRowDescription(Buffer.concat([timelineColumn, hex("00")])), /trailing/);
});

test("DataRow: values are views of the body; -1 is NULL; empty stays empty", () => {
  const vector = hex(`0003 0000000b ${text("16/B374D848")} ffffffff 00000000`);
  const values = parseDataRow(vector);
  assert.deepEqual(values, [Buffer.from("16/B374D848"), null, Buffer.alloc(0)]);
  assert.equal(values[0]!.buffer, vector.buffer);
  assert.equal(values[0]!.byteOffset, vector.byteOffset + 6);
  assert.deepEqual(body(dataRow(["16/B374D848", null, ""])), vector);
  assert.deepEqual(parseDataRow(hex("0000")), []);
});

test("DataRow: bad lengths, counts and trailing bytes are protocol errors", () => {
  assertProtocolError(() => parseDataRow(hex("0001 fffffffe")), /invalid value length -2/);
  assertProtocolError(() => parseDataRow(hex("0001 80000000")), /invalid value length/);
  assertProtocolError(() => parseDataRow(hex("0001 00000005 6162")), /column value/);
  assertProtocolError(() => parseDataRow(hex("8000")), /negative column count/);
  assertProtocolError(() => parseDataRow(hex("0002 ffffffff")), /truncated/);
  assertProtocolError(() => parseDataRow(hex("0001 ffffffff 00")), /trailing/);
  assertProtocolError(() => parseDataRow(hex("00")));
});

test("CommandComplete: the tag", () => {
  assert.equal(parseCommandComplete(hex(`${text("SELECT 1")}00`)), "SELECT 1");
  assert.equal(parseCommandComplete(body(commandComplete("START_REPLICATION"))), "START_REPLICATION");
  assertProtocolError(() => parseCommandComplete(hex(text("SELECT 1"))), /NUL/);
  assertProtocolError(() => parseCommandComplete(hex(`${text("SELECT 1")}00 00`)), /trailing/);
});

test("Copy responses: overall format and per-column formats", () => {
  assert.deepEqual(parseCopyResponse(hex("00 0000")), { overallFormat: 0, columnFormats: [] });
  assert.deepEqual(parseCopyResponse(hex("01 0002 0001 0000")), { overallFormat: 1, columnFormats: [1, 0] });
  assert.deepEqual(parseCopyResponse(body(copyBothResponse())), { overallFormat: 0, columnFormats: [] });
  assert.deepEqual(parseCopyResponse(body(copyOutResponse(1, [1]))), {
    overallFormat: 1,
    columnFormats: [1],
  });
  assertProtocolError(() => parseCopyResponse(hex("02 0000")), /overall format 2/);
  assertProtocolError(() => parseCopyResponse(hex("00 0001 0002")), /column format 2/);
  assertProtocolError(() => parseCopyResponse(hex("00 0002 0000")), /truncated/);
  assertProtocolError(() => parseCopyResponse(hex("00 ffff")), /negative/);
  assertProtocolError(() => parseCopyResponse(hex("00 0000 00")), /trailing/);
});

test("NegotiateProtocolVersion: newest minor version and unrecognized options", () => {
  const vector = hex(`00000000 00000002 ${text("_pq_.a")}00 ${text("_pq_.b")}00`);
  assert.deepEqual(parseNegotiateProtocolVersion(vector), {
    newestMinorVersion: 0,
    unrecognizedOptions: ["_pq_.a", "_pq_.b"],
  });
  assert.deepEqual(body(negotiateProtocolVersion(0, ["_pq_.a", "_pq_.b"])), vector);
  assertProtocolError(() => parseNegotiateProtocolVersion(hex("00000000 ffffffff")), /negative option count/);
  // A huge count fails on the body's end, quickly and without a huge allocation.
  assertProtocolError(() => parseNegotiateProtocolVersion(hex("00000000 7fffffff 00 00")));
  assertProtocolError(() => parseNegotiateProtocolVersion(hex("00000000 00000000 00")), /trailing/);
});

/** Valid bodies of layouts that end in a known place: every strict prefix must be rejected. */
const fixedLayouts: [string, (b: Buffer) => unknown, Buffer][] = [
  ["ok", parseAuthentication, hex("00000000")],
  ["md5", parseAuthentication, hex("00000005 0a0b0c0d")],
  ["sasl", parseAuthentication, body(authenticationSasl(["SCRAM-SHA-256"]))],
  ["error", parseErrorFields, slotMissing],
  ["parameter status", parseParameterStatus, body(parameterStatus("a", "b"))],
  ["ready", parseReadyForQuery, hex("49")],
  ["row description", parseRowDescription, timelineColumn],
  ["data row", parseDataRow, body(dataRow(["x", null, "yz"]))],
  ["command complete", parseCommandComplete, body(commandComplete("SELECT 1"))],
  ["copy response", parseCopyResponse, hex("01 0002 0001 0000")],
  ["negotiate", parseNegotiateProtocolVersion, body(negotiateProtocolVersion(2, ["x"]))],
];

test("every strict prefix and every one-byte extension of a valid body is rejected", () => {
  for (const [name, parse, valid] of fixedLayouts) {
    parse(valid); // sanity: the full body parses
    for (let length = 0; length < valid.length; length++) {
      assertProtocolError(() => parse(valid.subarray(0, length)), undefined);
    }
    assertProtocolError(() => parse(Buffer.concat([valid, hex("01")])), /trailing|terminator/);
    assert.ok(valid.length > 0, name);
  }
});
