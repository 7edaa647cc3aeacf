/**
 * Process exit codes. pg_receivewal uses only these two: 0 after a clean stop (signal, --endpos,
 * a finished slot action, --help, --version), 1 for every error. Scripts test for exactly that.
 */
export const ExitCode = {
  Success: 0,
  Failure: 1,
} as const;

export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];
