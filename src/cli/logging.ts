/**
 * The CLI's logger: pino on stderr (stdout stays free for --help/--version and pipelines). JSON
 * lines for log shippers when stderr is not a terminal, pino-pretty on one. Both are synchronous
 * so that the last lines before an exit are never lost.
 */
import pino, { type DestinationStream, type Logger } from "pino";
import type { LogFormat, LogLevel } from "./options.js";

export interface CliLoggerOptions {
  /** Shown as `name` on every line: "pg_receivewal" or "pgwal". */
  programName: string;
  level: LogLevel;
  format: LogFormat;
  /** Colors in pretty output (only when writing to a terminal). */
  colorize: boolean;
  /** Where lines go; default stderr (fd 2), written synchronously. */
  destination?: DestinationStream;
}

/**
 * pg_receivewal is quiet without -v (warnings, errors and reconnect notices only), reports each
 * finished segment with -v, and pgwal adds debug detail with -vv. --log-level overrides all of it.
 */
export function chooseLogLevel(verbose: number, explicit?: LogLevel): LogLevel {
  if (explicit !== undefined) return explicit;
  if (verbose >= 2) return "debug";
  if (verbose === 1) return "info";
  return "warn";
}

export function chooseLogFormat(explicit: LogFormat | undefined, stderrIsTerminal: boolean): LogFormat {
  return explicit ?? (stderrIsTerminal ? "pretty" : "json");
}

/**
 * Keys whose values are masked wherever they appear one or two levels deep. Connection settings
 * hold the password; nothing should log them, and this makes sure nothing can.
 */
export const REDACTED_PATHS = [
  "password",
  "*.password",
  "*.*.password",
  "connection.password",
  "settings.password",
];

/** Async because pino-pretty (a dozen modules) is loaded only when pretty output is wanted. */
export async function createCliLogger(options: CliLoggerOptions): Promise<Logger> {
  const config: pino.LoggerOptions = {
    name: options.programName,
    level: options.level,
    base: { pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"info" rather than 30: readable by people and by log shippers without a mapping.
    formatters: { level: (label) => ({ level: label }) },
    redact: { paths: REDACTED_PATHS, censor: "[redacted]" },
  };
  const target = options.destination ?? 2;
  let stream: DestinationStream;
  if (options.format === "pretty") {
    const { default: pinoPretty } = await import("pino-pretty");
    stream = pinoPretty({
      destination: target,
      sync: true,
      colorize: options.colorize,
      singleLine: true,
      ignore: "pid,hostname",
      translateTime: "SYS:yyyy-mm-dd HH:MM:ss.l",
    });
  } else {
    stream = typeof target === "number" ? pino.destination({ fd: target, sync: true }) : target;
  }
  return pino(config, stream);
}
