/**
 * Builders for complete backend messages (type byte + length + body), for tests and the fake
 * server. Written independently of the parsers in src/protocol so that round trips check both.
 */
import type { ServerErrorFields } from "../../src/errors.js";
import type { Lsn } from "../../src/lsn.js";

const EMPTY = Buffer.alloc(0);

/** Any backend message: `type`, Int32 length (counting itself), `body`. */
export function backendMessage(type: number | string, body: Uint8Array = EMPTY): Buffer {
  const code = typeof type === "string" ? type.charCodeAt(0) : type;
  const message = Buffer.alloc(5 + body.length);
  message[0] = code;
  message.writeInt32BE(4 + body.length, 1);
  message.set(body, 5);
  return message;
}

/** A NUL-terminated UTF-8 string. */
export function cstring(text: string): Buffer {
  return Buffer.concat([Buffer.from(text, "utf8"), Buffer.from([0])]);
}

export function int16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(value);
  return b;
}

export function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(value);
  return b;
}

export function uint32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(value);
  return b;
}

export function uint64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(value);
  return b;
}

export function int64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64BE(value);
  return b;
}

// --- Authentication ('R') ---

/** AuthenticationRequest with an arbitrary code and trailing payload. */
export function authenticationRequest(code: number, extra: Uint8Array = EMPTY): Buffer {
  return backendMessage("R", Buffer.concat([int32(code), extra]));
}

export function authenticationOk(): Buffer {
  return authenticationRequest(0);
}

export function authenticationCleartextPassword(): Buffer {
  return authenticationRequest(3);
}

export function authenticationMd5Password(salt: Uint8Array): Buffer {
  return authenticationRequest(5, salt);
}

export function authenticationSasl(mechanisms: readonly string[]): Buffer {
  return authenticationRequest(10, Buffer.concat([...mechanisms.map(cstring), Buffer.from([0])]));
}

export function authenticationSaslContinue(data: Uint8Array | string): Buffer {
  return authenticationRequest(11, typeof data === "string" ? Buffer.from(data, "utf8") : data);
}

export function authenticationSaslFinal(data: Uint8Array | string): Buffer {
  return authenticationRequest(12, typeof data === "string" ? Buffer.from(data, "utf8") : data);
}

// --- Session start ---

export function backendKeyData(processId: number, secretKey: Uint8Array = int32(0x1234_5678)): Buffer {
  return backendMessage("K", Buffer.concat([int32(processId), secretKey]));
}

export function parameterStatus(name: string, value: string): Buffer {
  return backendMessage("S", Buffer.concat([cstring(name), cstring(value)]));
}

export function negotiateProtocolVersion(
  newestMinorVersion: number,
  unrecognizedOptions: readonly string[],
): Buffer {
  return backendMessage(
    "v",
    Buffer.concat([
      int32(newestMinorVersion),
      int32(unrecognizedOptions.length),
      ...unrecognizedOptions.map(cstring),
    ]),
  );
}

export function readyForQuery(status: "I" | "T" | "E" = "I"): Buffer {
  return backendMessage("Z", Buffer.from(status, "latin1"));
}

// --- Errors and notices ---

const FIELD_CODES: Record<keyof ServerErrorFields, string> = {
  severity: "V",
  code: "C",
  message: "M",
  detail: "D",
  hint: "H",
  position: "P",
  internalPosition: "p",
  internalQuery: "q",
  where: "W",
  schema: "s",
  table: "t",
  column: "c",
  dataType: "d",
  constraint: "n",
  file: "F",
  line: "L",
  routine: "R",
};

export interface ErrorFieldsInput extends Partial<ServerErrorFields> {
  /** The translated severity ('S'); defaults to `severity`. Set `severity: undefined` to send only 'S'. */
  localizedSeverity?: string;
  /** Extra raw fields appended as given (e.g. unknown codes). */
  raw?: readonly (readonly [string, string])[];
}

/** Body of an ErrorResponse/NoticeResponse: code byte + C string per field, then a NUL. */
export function errorFieldsBody(fields: ErrorFieldsInput): Buffer {
  const parts: Buffer[] = [];
  const add = (code: string, value: string) => parts.push(Buffer.from(code, "latin1"), cstring(value));
  const localized = fields.localizedSeverity ?? fields.severity;
  if (localized !== undefined) add("S", localized);
  for (const [name, code] of Object.entries(FIELD_CODES) as [keyof ServerErrorFields, string][]) {
    const value = fields[name];
    if (value !== undefined) add(code, value);
  }
  for (const [code, value] of fields.raw ?? []) add(code, value);
  parts.push(Buffer.from([0]));
  return Buffer.concat(parts);
}

export function errorResponse(fields: ErrorFieldsInput): Buffer {
  return backendMessage("E", errorFieldsBody(fields));
}

export function noticeResponse(fields: ErrorFieldsInput): Buffer {
  return backendMessage("N", errorFieldsBody(fields));
}

// --- Simple query results ---

export interface ColumnInput {
  name: string;
  tableOid?: number;
  columnNumber?: number;
  typeOid?: number;
  typeSize?: number;
  typeModifier?: number;
  format?: number;
}

/** Text type, as replication commands report most columns. */
export const TEXT_OID = 25;
export const INT4_OID = 23;
export const INT8_OID = 20;

export function rowDescription(columns: readonly (ColumnInput | string)[]): Buffer {
  const parts: Buffer[] = [int16(columns.length)];
  for (const input of columns) {
    const c = typeof input === "string" ? { name: input } : input;
    parts.push(
      cstring(c.name),
      uint32(c.tableOid ?? 0),
      int16(c.columnNumber ?? 0),
      uint32(c.typeOid ?? TEXT_OID),
      int16(c.typeSize ?? -1),
      int32(c.typeModifier ?? -1),
      int16(c.format ?? 0),
    );
  }
  return backendMessage("T", Buffer.concat(parts));
}

/** A row of text (or raw) values; null is SQL NULL. */
export function dataRow(values: readonly (string | Uint8Array | null)[]): Buffer {
  const parts: Buffer[] = [int16(values.length)];
  for (const value of values) {
    if (value === null) {
      parts.push(int32(-1));
    } else {
      const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : Buffer.from(value);
      parts.push(int32(bytes.length), bytes);
    }
  }
  return backendMessage("D", Buffer.concat(parts));
}

export function commandComplete(tag: string): Buffer {
  return backendMessage("C", cstring(tag));
}

export function emptyQueryResponse(): Buffer {
  return backendMessage("I");
}

/** RowDescription, one DataRow per row, CommandComplete "SELECT n" (or `tag`): a whole result set. */
export function resultSet(
  columns: readonly (ColumnInput | string)[],
  rows: readonly (readonly (string | Uint8Array | null)[])[],
  tag = `SELECT ${rows.length}`,
): Buffer {
  return Buffer.concat([rowDescription(columns), ...rows.map(dataRow), commandComplete(tag)]);
}

// --- COPY ---

function copyResponse(type: string, overallFormat: number, columnFormats: readonly number[]): Buffer {
  return backendMessage(
    type,
    Buffer.concat([Buffer.from([overallFormat]), int16(columnFormats.length), ...columnFormats.map(int16)]),
  );
}

export function copyInResponse(overallFormat = 0, columnFormats: readonly number[] = []): Buffer {
  return copyResponse("G", overallFormat, columnFormats);
}

export function copyOutResponse(overallFormat = 0, columnFormats: readonly number[] = []): Buffer {
  return copyResponse("H", overallFormat, columnFormats);
}

/** What the server sends after START_REPLICATION: text format, zero columns. */
export function copyBothResponse(overallFormat = 0, columnFormats: readonly number[] = []): Buffer {
  return copyResponse("W", overallFormat, columnFormats);
}

export function copyData(payload: Uint8Array): Buffer {
  return backendMessage("d", payload);
}

export function copyDone(): Buffer {
  return backendMessage("c");
}

// --- Replication sub-protocol (inside CopyData) ---

export function xlogDataPayload(start: Lsn, end: Lsn, serverTime: bigint, data: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from("w", "latin1"), uint64(start), uint64(end), int64(serverTime), data]);
}

/** A complete CopyData message carrying XLogData. */
export function xlogData(start: Lsn, end: Lsn, serverTime: bigint, data: Uint8Array): Buffer {
  return copyData(xlogDataPayload(start, end, serverTime, data));
}

export function keepalivePayload(end: Lsn, serverTime: bigint, replyRequested = false): Buffer {
  return Buffer.concat([
    Buffer.from("k", "latin1"),
    uint64(end),
    int64(serverTime),
    Buffer.from([replyRequested ? 1 : 0]),
  ]);
}

/** A complete CopyData message carrying a primary keepalive. */
export function keepalive(end: Lsn, serverTime: bigint, replyRequested = false): Buffer {
  return copyData(keepalivePayload(end, serverTime, replyRequested));
}
