/**
 * Type bytes of protocol 3 messages. The frame is `type (1 byte) | length (Int32, counts itself) | body`;
 * only the startup-phase packets (StartupMessage, SSLRequest) have no type byte.
 */

/** Messages the server sends. CopyData and CopyDone travel in both directions. */
export const Backend = {
  Authentication: 0x52, // 'R'
  BackendKeyData: 0x4b, // 'K'
  BindComplete: 0x32, // '2'
  CloseComplete: 0x33, // '3'
  CommandComplete: 0x43, // 'C'
  CopyBothResponse: 0x57, // 'W'
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyInResponse: 0x47, // 'G'
  CopyOutResponse: 0x48, // 'H'
  DataRow: 0x44, // 'D'
  EmptyQueryResponse: 0x49, // 'I'
  ErrorResponse: 0x45, // 'E'
  FunctionCallResponse: 0x56, // 'V'
  NegotiateProtocolVersion: 0x76, // 'v'
  NoData: 0x6e, // 'n'
  NoticeResponse: 0x4e, // 'N'
  NotificationResponse: 0x41, // 'A'
  ParameterDescription: 0x74, // 't'
  ParameterStatus: 0x53, // 'S'
  ParseComplete: 0x31, // '1'
  PortalSuspended: 0x73, // 's'
  ReadyForQuery: 0x5a, // 'Z'
  RowDescription: 0x54, // 'T'
} as const;

/** Messages the client sends (only those a replication client needs). */
export const Frontend = {
  CopyData: 0x64, // 'd'
  CopyDone: 0x63, // 'c'
  CopyFail: 0x66, // 'f'
  /** PasswordMessage, SASLInitialResponse and SASLResponse share 'p'. */
  Password: 0x70, // 'p'
  Query: 0x51, // 'Q'
  Terminate: 0x58, // 'X'
} as const;

export type BackendMessageType = (typeof Backend)[keyof typeof Backend];

const backendNames = new Map<number, string>(Object.entries(Backend).map(([name, code]) => [code, name]));

/** Printable form of a type byte for error messages: `'E'` or `0x00`. */
export function typeByteText(type: number): string {
  return type >= 0x21 && type <= 0x7e
    ? `'${String.fromCharCode(type)}'`
    : `0x${type.toString(16).padStart(2, "0")}`;
}

/** "ErrorResponse ('E')" for a known type, "unknown message type 0x00" otherwise. */
export function backendMessageName(type: number): string {
  const name = backendNames.get(type);
  return name === undefined
    ? `unknown message type ${typeByteText(type)}`
    : `${name} (${typeByteText(type)})`;
}
