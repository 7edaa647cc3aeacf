import type { ServerErrorFields } from "../errors.js";
import { BodyReader } from "./body-reader.js";
import { escapeControlCharacters } from "./untrusted-text.js";

/*
 * Parsers for the bodies of backend messages (header already removed by the framer). Each one
 * reads exactly the documented layout and rejects short bodies, bad counts and trailing bytes
 * with ProtocolError. Buffers that callers keep for long (salt, SASL data, cancel key) are copied
 * so they do not pin a large socket chunk in memory; DataRow values stay views. Error fields and
 * parameter values come out with control characters escaped (see untrusted-text.ts).
 */

export type AuthenticationRequest =
  | { kind: "ok" }
  | { kind: "cleartext-password" }
  | { kind: "md5-password"; salt: Buffer }
  | { kind: "sasl"; mechanisms: string[] }
  | { kind: "sasl-continue"; data: Buffer }
  | { kind: "sasl-final"; data: Buffer }
  | { kind: "unsupported"; code: number; method: string };

/** Methods pgwal does not implement, by AuthenticationRequest code, for a clear error message. */
const UNSUPPORTED_METHODS = new Map<number, string>([
  [2, "Kerberos V5"],
  [6, "SCM credentials"],
  [7, "GSSAPI"],
  [8, "GSSAPI"],
  [9, "SSPI"],
]);

export function parseAuthentication(body: Buffer): AuthenticationRequest {
  const reader = new BodyReader(body, "Authentication");
  const code = reader.int32("request code");
  switch (code) {
    case 0:
      reader.end();
      return { kind: "ok" };
    case 3:
      reader.end();
      return { kind: "cleartext-password" };
    case 5: {
      const salt = Buffer.from(reader.bytes(4, "MD5 salt"));
      reader.end();
      return { kind: "md5-password", salt };
    }
    case 10: {
      const mechanisms: string[] = [];
      while (!reader.atListEnd("SASL mechanism list terminator")) {
        mechanisms.push(reader.cstring("SASL mechanism name"));
      }
      reader.end();
      return { kind: "sasl", mechanisms };
    }
    case 11:
      return { kind: "sasl-continue", data: Buffer.from(reader.rest()) };
    case 12:
      return { kind: "sasl-final", data: Buffer.from(reader.rest()) };
    default:
      // Any payload (e.g. GSSAPI continuation data) is irrelevant: we will not answer it.
      return { kind: "unsupported", code, method: UNSUPPORTED_METHODS.get(code) ?? `unknown (code ${code})` };
  }
}

type ErrorFieldName = Exclude<keyof ServerErrorFields, "severity">;

/** Identification bytes of ErrorResponse/NoticeResponse fields, except the two severities. */
const ERROR_FIELDS = new Map<number, ErrorFieldName>([
  [0x43 /* C */, "code"],
  [0x4d /* M */, "message"],
  [0x44 /* D */, "detail"],
  [0x48 /* H */, "hint"],
  [0x50 /* P */, "position"],
  [0x70 /* p */, "internalPosition"],
  [0x71 /* q */, "internalQuery"],
  [0x57 /* W */, "where"],
  [0x73 /* s */, "schema"],
  [0x74 /* t */, "table"],
  [0x63 /* c */, "column"],
  [0x64 /* d */, "dataType"],
  [0x6e /* n */, "constraint"],
  [0x46 /* F */, "file"],
  [0x4c /* L */, "line"],
  [0x52 /* R */, "routine"],
]);
const SEVERITY_LOCALIZED = 0x53; // 'S'
const SEVERITY = 0x56; // 'V': never translated (9.6+), so preferred for decisions

/** Fields of an ErrorResponse or NoticeResponse body. Unknown field codes are skipped, as the protocol asks. */
export function parseErrorFields(body: Buffer): ServerErrorFields {
  const reader = new BodyReader(body, "ErrorResponse/NoticeResponse");
  const fields: Partial<Record<ErrorFieldName, string>> = {};
  let severity: string | undefined;
  let localizedSeverity: string | undefined;
  while (!reader.atListEnd("field list terminator")) {
    const code = reader.uint8("field code");
    // Every field may end up in a message or a log line: no control characters get that far.
    const value = escapeControlCharacters(reader.cstring("field value"));
    if (code === SEVERITY) severity = value;
    else if (code === SEVERITY_LOCALIZED) localizedSeverity = value;
    else {
      const name = ERROR_FIELDS.get(code);
      if (name !== undefined) fields[name] = value;
    }
  }
  reader.end();
  const { code, message } = fields;
  severity ??= localizedSeverity;
  if (severity === undefined) throw reader.fail("no severity field (S or V)");
  if (code === undefined) throw reader.fail("no SQLSTATE field (C)");
  if (message === undefined) throw reader.fail("no message field (M)");
  return { ...fields, severity, code, message };
}

export function parseParameterStatus(body: Buffer): { name: string; value: string } {
  const reader = new BodyReader(body, "ParameterStatus");
  // Values such as server_version are shown in messages and logs.
  const name = escapeControlCharacters(reader.cstring("parameter name"));
  const value = escapeControlCharacters(reader.cstring("parameter value"));
  reader.end();
  return { name, value };
}

/** Cancel keys are 4 bytes in protocol 3.0 and up to 256 bytes from 3.2. */
const MAX_CANCEL_KEY_LENGTH = 256;

export function parseBackendKeyData(body: Buffer): { processId: number; secretKey: Buffer } {
  const reader = new BodyReader(body, "BackendKeyData");
  const processId = reader.int32("process ID");
  const keyLength = reader.remaining;
  if (keyLength < 1 || keyLength > MAX_CANCEL_KEY_LENGTH) {
    throw reader.fail(`secret key of ${keyLength} bytes (expected 1 to ${MAX_CANCEL_KEY_LENGTH})`);
  }
  return { processId, secretKey: Buffer.from(reader.rest()) };
}

/** Idle, in a transaction block, or in a failed transaction block. */
export type TransactionStatus = "I" | "T" | "E";

export function parseReadyForQuery(body: Buffer): TransactionStatus {
  const reader = new BodyReader(body, "ReadyForQuery");
  const status = String.fromCharCode(reader.uint8("transaction status"));
  reader.end();
  if (status !== "I" && status !== "T" && status !== "E") {
    throw reader.fail(`unknown transaction status 0x${status.charCodeAt(0).toString(16)}`);
  }
  return status;
}

export interface FieldDescription {
  name: string;
  tableOid: number;
  columnNumber: number;
  typeOid: number;
  typeSize: number;
  typeModifier: number;
  /** 0 text, 1 binary. */
  format: number;
}

function count(reader: BodyReader, what: string): number {
  const n = reader.int16(what);
  if (n < 0) throw reader.fail(`negative ${what} ${n}`);
  return n;
}

export function parseRowDescription(body: Buffer): FieldDescription[] {
  const reader = new BodyReader(body, "RowDescription");
  const fieldCount = count(reader, "field count");
  const fields: FieldDescription[] = [];
  for (let i = 0; i < fieldCount; i++) {
    fields.push({
      name: reader.cstring("field name"),
      tableOid: reader.uint32("table OID"),
      columnNumber: reader.int16("column number"),
      typeOid: reader.uint32("type OID"),
      typeSize: reader.int16("type size"),
      typeModifier: reader.int32("type modifier"),
      format: reader.int16("format code"),
    });
  }
  reader.end();
  return fields;
}

/** Column values as views into `body`; null for SQL NULL (length -1). */
export function parseDataRow(body: Buffer): (Buffer | null)[] {
  const reader = new BodyReader(body, "DataRow");
  const columnCount = count(reader, "column count");
  const values: (Buffer | null)[] = [];
  for (let i = 0; i < columnCount; i++) {
    const length = reader.int32("value length");
    if (length === -1) values.push(null);
    else if (length < 0) throw reader.fail(`invalid value length ${length}`);
    else values.push(reader.bytes(length, "column value"));
  }
  reader.end();
  return values;
}

/** The command tag, e.g. "SELECT 1" or "START_REPLICATION". */
export function parseCommandComplete(body: Buffer): string {
  const reader = new BodyReader(body, "CommandComplete");
  const tag = reader.cstring("command tag");
  reader.end();
  return tag;
}

export interface CopyResponse {
  /** 0 text, 1 binary. */
  overallFormat: number;
  columnFormats: number[];
}

function formatCode(reader: BodyReader, value: number, what: string): number {
  if (value !== 0 && value !== 1) throw reader.fail(`${what} ${value} is neither 0 (text) nor 1 (binary)`);
  return value;
}

/** CopyInResponse, CopyOutResponse and CopyBothResponse share this layout. */
export function parseCopyResponse(body: Buffer): CopyResponse {
  const reader = new BodyReader(body, "Copy response");
  const overallFormat = formatCode(reader, reader.uint8("overall format"), "overall format");
  const columnCount = count(reader, "column count");
  const columnFormats: number[] = [];
  for (let i = 0; i < columnCount; i++) {
    columnFormats.push(formatCode(reader, reader.int16("column format"), "column format"));
  }
  reader.end();
  return { overallFormat, columnFormats };
}

export function parseNegotiateProtocolVersion(body: Buffer): {
  newestMinorVersion: number;
  unrecognizedOptions: string[];
} {
  const reader = new BodyReader(body, "NegotiateProtocolVersion");
  const newestMinorVersion = reader.int32("newest minor version");
  const optionCount = reader.int32("option count");
  if (optionCount < 0) throw reader.fail(`negative option count ${optionCount}`);
  const unrecognizedOptions: string[] = [];
  // Each option takes at least its NUL, so a huge count fails on the body length, not on memory.
  for (let i = 0; i < optionCount; i++) unrecognizedOptions.push(reader.cstring("option name"));
  reader.end();
  return { newestMinorVersion, unrecognizedOptions };
}
