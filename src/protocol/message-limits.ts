import { ProtocolError } from "../errors.js";
import { Backend, backendMessageName } from "./message-types.js";

/**
 * libpq's size rules for backend messages, checked on the header before any of the body is read or
 * memory is set aside for it.
 *
 * Before authentication completes only an authentication request, NegotiateProtocolVersion or an
 * ErrorResponse may come, and all are small (fe-connect.c: 2000 bytes for the first two, 30000 for an
 * error): a server or anyone in the middle cannot make the client allocate a large buffer before
 * login. Afterwards, as fe-protocol3.c's VALID_LONG_MESSAGE_TYPE, only the types that carry data or
 * free text may be long; everything else stays under 30000 bytes.
 */

/** What the framer asks before it reads a body, and tells after it has framed a message. */
export interface MessageLimits {
  /** Throws ProtocolError if a message of `type` whose length field is `length` must not be read. */
  check(type: number, length: number): void;
  /** Sees each complete message, in order, before it is handed on (to follow the connection's phase). */
  observe(type: number, body: Buffer): void;
}

/** fe-connect.c: authentication requests and NegotiateProtocolVersion. */
const MAX_AUTHENTICATION_LENGTH = 2000;
/** fe-connect.c's MAX_ERRLEN, and fe-protocol3.c's bound for message types that are never long. */
const MAX_SHORT_LENGTH = 30000;
/** The smallest Authentication/ErrorResponse/NegotiateProtocolVersion: length word plus an Int32 or a field. */
const MIN_STARTUP_LENGTH = 8;

const BEFORE_AUTHENTICATION = new Map<number, number>([
  [Backend.Authentication, MAX_AUTHENTICATION_LENGTH],
  [Backend.NegotiateProtocolVersion, MAX_AUTHENTICATION_LENGTH],
  [Backend.ErrorResponse, MAX_SHORT_LENGTH],
]);

/** fe-protocol3.c's VALID_LONG_MESSAGE_TYPE. */
const LONG_MESSAGE_TYPES = new Set<number>([
  Backend.RowDescription,
  Backend.DataRow,
  Backend.CopyData,
  Backend.FunctionCallResponse,
  Backend.ErrorResponse,
  Backend.NoticeResponse,
  Backend.NotificationResponse,
]);

/** AuthenticationOk's body: request code 0. */
function isAuthenticationOk(type: number, body: Buffer): boolean {
  return type === Backend.Authentication && body.length === 4 && body.readInt32BE(0) === 0;
}

/** The limits of one connection, from its first byte: tight until AuthenticationOk, then libpq's. */
export class ConnectionMessageLimits implements MessageLimits {
  private authenticated = false;

  get afterAuthentication(): boolean {
    return this.authenticated;
  }

  check(type: number, length: number): void {
    if (this.authenticated) {
      if (length > MAX_SHORT_LENGTH && !LONG_MESSAGE_TYPES.has(type)) {
        throw new ProtocolError(
          `invalid length ${length} in ${backendMessageName(type)} message header (limit ${MAX_SHORT_LENGTH} for this message type)`,
        );
      }
      return;
    }
    const limit = BEFORE_AUTHENTICATION.get(type);
    if (limit === undefined) {
      throw new ProtocolError(
        `expected authentication request from server, but received ${backendMessageName(type)}`,
      );
    }
    if (length < MIN_STARTUP_LENGTH || length > limit) {
      throw new ProtocolError(
        `invalid length ${length} in ${backendMessageName(type)} message header ` +
          (length < MIN_STARTUP_LENGTH
            ? `(less than ${MIN_STARTUP_LENGTH})`
            : `(limit ${limit} before authentication)`),
      );
    }
  }

  observe(type: number, body: Buffer): void {
    if (!this.authenticated && isAuthenticationOk(type, body)) this.authenticated = true;
  }
}
