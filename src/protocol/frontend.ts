import { UsageError } from "../errors.js";
import { Frontend } from "./message-types.js";

/** Protocol 3.0 as the StartupMessage version field: major 3 in the high 16 bits, minor 0. */
export const PROTOCOL_VERSION_3_0 = 196608;

/** The magic "version" of an SSLRequest: 1234 in the high 16 bits, 5679 in the low. */
export const SSL_REQUEST_CODE = 80877103;

const MAX_MESSAGE_LENGTH = 0x7fff_ffff;

/**
 * Strings sent as C strings must not contain NUL: the server would cut them short and read the
 * rest as the next field. They come from the user (conninfo, slot names), hence UsageError.
 */
function checkCString(value: string, what: string): void {
  if (value.includes("\0")) throw new UsageError(`${what} must not contain a NUL character`);
}

/** One allocation holding a typed message header for a body of `bodyLength` bytes. */
function allocateMessage(type: number, bodyLength: number): Buffer {
  const length = 4 + bodyLength;
  if (length > MAX_MESSAGE_LENGTH) throw new UsageError(`message of ${length} bytes is too large to send`);
  const message = Buffer.allocUnsafe(1 + length);
  message[0] = type;
  message.writeInt32BE(length, 1);
  return message;
}

/** A message whose body is one C string (Query, PasswordMessage, CopyFail). */
function cstringMessage(type: number, text: string, what: string): Buffer {
  checkCString(text, what);
  const textLength = Buffer.byteLength(text, "utf8");
  const message = allocateMessage(type, textLength + 1);
  message.write(text, 5, "utf8");
  message[5 + textLength] = 0;
  return message;
}

/** StartupMessage for protocol 3.0: `key\0value\0` pairs ended by one more NUL. */
export function startupMessage(params: Readonly<Record<string, string>>): Buffer {
  const entries = Object.entries(params);
  let length = 4 + 4 + 1;
  for (const [key, value] of entries) {
    // An empty key would read as the list terminator.
    if (key === "") throw new UsageError("startup parameter names must not be empty");
    checkCString(key, "startup parameter name");
    checkCString(value, `startup parameter "${key}"`);
    length += Buffer.byteLength(key, "utf8") + Buffer.byteLength(value, "utf8") + 2;
  }
  if (length > MAX_MESSAGE_LENGTH) throw new UsageError("startup parameters are too large");
  const message = Buffer.allocUnsafe(length);
  message.writeInt32BE(length, 0);
  message.writeInt32BE(PROTOCOL_VERSION_3_0, 4);
  let pos = 8;
  for (const [key, value] of entries) {
    pos += message.write(key, pos, "utf8");
    message[pos++] = 0;
    pos += message.write(value, pos, "utf8");
    message[pos++] = 0;
  }
  message[pos] = 0;
  return message;
}

/** SSLRequest: asks the server whether it will switch the connection to TLS ('S') or not ('N'). */
export function sslRequest(): Buffer {
  const message = Buffer.allocUnsafe(8);
  message.writeInt32BE(8, 0);
  message.writeInt32BE(SSL_REQUEST_CODE, 4);
  return message;
}

/** Simple-protocol Query: the only kind a physical replication connection accepts. */
export function queryMessage(sql: string): Buffer {
  return cstringMessage(Frontend.Query, sql, "query text");
}

/** PasswordMessage: the cleartext password or the "md5…" digest. */
export function passwordMessage(password: string): Buffer {
  return cstringMessage(Frontend.Password, password, "password");
}

/** SASLInitialResponse: chosen mechanism, then Int32 length and the client-first message. */
export function saslInitialResponse(mechanism: string, data: Buffer): Buffer {
  checkCString(mechanism, "SASL mechanism name");
  const nameLength = Buffer.byteLength(mechanism, "utf8");
  const message = allocateMessage(Frontend.Password, nameLength + 1 + 4 + data.length);
  let pos = 5 + message.write(mechanism, 5, "utf8");
  message[pos++] = 0;
  pos = message.writeInt32BE(data.length, pos);
  message.set(data, pos);
  return message;
}

/** SASLResponse: the mechanism's next message, raw. */
export function saslResponse(data: Buffer): Buffer {
  const message = allocateMessage(Frontend.Password, data.length);
  message.set(data, 5);
  return message;
}

/** CopyData carrying `payload` (for replication, a standby status update or similar). */
export function copyDataMessage(payload: Uint8Array): Buffer {
  const message = allocateMessage(Frontend.CopyData, payload.length);
  message.set(payload, 5);
  return message;
}

export function copyDoneMessage(): Buffer {
  return allocateMessage(Frontend.CopyDone, 0);
}

export function copyFailMessage(reason: string): Buffer {
  return cstringMessage(Frontend.CopyFail, reason, "CopyFail reason");
}

export function terminateMessage(): Buffer {
  return allocateMessage(Frontend.Terminate, 0);
}
