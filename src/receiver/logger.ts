/**
 * The logging surface the receiver needs: pino's method shape (fields first, then message), so a
 * pino logger is passed as is and library users can adapt any other logger in a few lines.
 */
export interface ReceiverLogger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export const silentLogger: ReceiverLogger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
};
