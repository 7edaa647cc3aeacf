/**
 * Turns a failure into what the user sees on stderr and the exit code. The first line is always
 * pg_receivewal's `<program>: error: <message>`, in plain text whatever the log format, so scripts
 * that match pg_receivewal's messages keep working. Server DETAIL and HINT follow as PostgreSQL's
 * tools print them. A stack trace is shown only when asked for (it only helps for bugs).
 */
import { PgwalError, ServerError } from "../errors.js";
import { ExitCode, type ExitCodeValue } from "./exit-codes.js";

export interface FatalReport {
  /** Lines for stderr, without trailing newlines. */
  lines: string[];
  exitCode: ExitCodeValue;
  /** Structured fields for a JSON log line (error class, SQLSTATE, …). */
  fields: Record<string, unknown>;
  /** The message of the first line (without the program prefix). */
  message: string;
}

export interface FatalReportOptions {
  programName: string;
  /** Print the stack trace (--log-level debug or trace). */
  showStack: boolean;
}

export function reportFatalError(error: unknown, options: FatalReportOptions): FatalReport {
  const prefix = options.programName;
  // No scrubbing: passwords are kept out of messages where they are made (conninfo masks them
  // wherever it echoes a connection string), and rewriting every occurrence of a short password
  // mangles the message and reveals the password ("conn***ction" for password "e").
  const lines: string[] = [];
  const fields: Record<string, unknown> = {};
  let message: string;
  if (error instanceof PgwalError) {
    message = error.message;
    lines.push(`${prefix}: error: ${message}`);
    fields.errorType = error.name;
    if (error instanceof ServerError) {
      fields.sqlstate = error.code;
      if (error.fields.detail) lines.push(`${prefix}: detail: ${error.fields.detail}`);
      if (error.fields.hint) lines.push(`${prefix}: hint: ${error.fields.hint}`);
    }
  } else {
    // Not one of our typed errors: a bug. Say so, so it gets reported rather than worked around.
    const text = error instanceof Error ? error.message : String(error);
    message = `internal error: ${text}`;
    lines.push(`${prefix}: error: ${message}`);
    fields.errorType = error instanceof Error ? error.name : typeof error;
    if (!options.showStack)
      lines.push(`${prefix}: hint: this is a bug in pgwal; run with --log-level=debug for a stack trace`);
  }
  if (options.showStack && error instanceof Error && error.stack) {
    lines.push(...error.stack.split("\n"));
  }
  return { lines, exitCode: ExitCode.Failure, fields, message };
}

/** Lines for a usage error: the message, then pg_receivewal's hint where it gives one. */
export function usageErrorLines(
  programName: string,
  helpCommand: string,
  message: string,
  showHint: boolean,
): string[] {
  const lines = [`${programName}: error: ${message}`];
  if (showHint) lines.push(`${programName}: hint: Try "${helpCommand} --help" for more information.`);
  return lines;
}
