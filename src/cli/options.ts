/**
 * `pgwal receive` / `pg_receivewal` options: the option table, PGWAL_* environment variables,
 * and pg_receivewal's validations with its messages, in its order. Pure: nothing here exits,
 * prints or touches the network; the caller turns an outcome into output and an exit code.
 */
import type { PgwalError } from "../errors.js";
import type { Lsn } from "../lsn.js";
import { type CompressionSpec, parseCompressionSpec } from "../wal/compression.js";
import { parseDuration } from "./duration.js";
import { ExitCode } from "./exit-codes.js";
import { getoptLong, type OptionSpec, type ParsedOption } from "./getopt.js";
import { receiveHelpText } from "./help-text.js";
import { versionLine } from "./version.js";

/** -w never, -W always (before connecting), otherwise only when the server asks for one. */
export type PasswordPrompt = "never" | "auto" | "always";
export type LogFormat = "json" | "pretty";
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ReceiveArgs {
  /** -D; absent only with --create-slot / --drop-slot. */
  directory?: string;
  /** -E; absent when not given or given as 0/0 (pg_receivewal treats 0/0 as "no end position"). */
  endpos?: Lsn;
  ifNotExists: boolean;
  noLoop: boolean;
  noSync: boolean;
  /** -s in seconds (default 10; 0 disables periodic status packets). */
  statusIntervalSeconds: number;
  slot?: string;
  synchronous: boolean;
  /** Number of -v. */
  verbose: number;
  compression: CompressionSpec;
  createSlot: boolean;
  dropSlot: boolean;
  /** -d: a libpq connection string. */
  dbname?: string;
  host?: string;
  /** Kept as text: libpq validates it when the settings are resolved. */
  port?: string;
  username?: string;
  passwordPrompt: PasswordPrompt;
  /** --log-format; absent = pretty on a terminal, JSON otherwise. */
  logFormat?: LogFormat;
  /** --log-level; absent = chosen from -v. */
  logLevel?: LogLevel;
  /** --on-segment: shell command run for every completed segment and history file (%p, %f). */
  onSegment?: string;
  /** --hook-holds-slot: report as flushed only WAL whose segment hook succeeded. */
  hookHoldsSlot: boolean;
  /** --hook-state-file; absent = defaultHookStateFile(directory). */
  hookStateFile?: string;
  /** --metrics-listen host:port for /metrics and /healthz. */
  metricsListen?: ListenAddress;
  /** --target s3://BUCKET/PREFIX: upload the archive there. */
  target?: string;
  /** --s3-endpoint; absent = AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL / AWS. */
  s3Endpoint?: string;
  /** --s3-addressing-style; absent = path-style with a custom endpoint, else virtual-host. */
  s3Addressing?: "path" | "virtual";
  /** --upload-concurrency (default 4). */
  uploadConcurrency: number;
  /** --partial-upload-interval in seconds (default 10; 0 = never upload the .partial). */
  partialUploadIntervalSeconds: number;
  /** --upload-holds-slot: report as flushed only WAL that is in the bucket. */
  uploadHoldsSlot: boolean;
  /** --upload-state-file; absent = defaultUploadStateFile(directory, target). */
  uploadStateFile?: string;
  /** --retention: remove segments completed longer ago than this many milliseconds. */
  retentionMs?: number;
}

/** Where the metrics endpoint listens: an explicit host (never a wildcard by default) and a port (0 = any free one). */
export interface ListenAddress {
  host: string;
  port: number;
}

export interface ParseContext {
  /** "pg_receivewal" when started under that name, else "pgwal". */
  programName: string;
  /** Source of PGWAL_* variables (default: none, so parsing stays pure unless the caller passes process.env). */
  env?: NodeJS.ProcessEnv;
}

export type ParseOutcome =
  | { kind: "run"; args: ReceiveArgs }
  | { kind: "help"; text: string; exitCode: typeof ExitCode.Success }
  | { kind: "version"; text: string; exitCode: typeof ExitCode.Success }
  /** `showHint`: pg_receivewal adds `hint: Try "… --help"` to usage errors but not to fatal value errors. */
  | { kind: "usage-error"; message: string; showHint: boolean; exitCode: typeof ExitCode.Failure };

type OptionKey =
  | "help"
  | "version"
  | "directory"
  | "endpos"
  | "ifNotExists"
  | "noLoop"
  | "noSync"
  | "statusInterval"
  | "slot"
  | "synchronous"
  | "verbose"
  | "compress"
  | "createSlot"
  | "dropSlot"
  | "dbname"
  | "host"
  | "port"
  | "username"
  | "noPassword"
  | "password"
  | "logFormat"
  | "logLevel"
  | "onSegment"
  | "hookHoldsSlot"
  | "hookStateFile"
  | "metricsListen"
  | "target"
  | "s3Endpoint"
  | "s3Addressing"
  | "uploadConcurrency"
  | "partialUploadInterval"
  | "uploadHoldsSlot"
  | "uploadStateFile"
  | "retention";

interface ReceiveOptionSpec extends OptionSpec {
  key: OptionKey;
  /** How the PGWAL_* variable is read; absent = not settable from the environment. */
  env?: "string" | "boolean" | "count";
}

/** pg_receivewal's option set (getopt string "d:D:E:h:np:s:S:U:vwWZ:" plus its long-only options), then pgwal's own. */
export const RECEIVE_OPTIONS: readonly ReceiveOptionSpec[] = [
  { key: "help", short: "?", long: "help", takesValue: false },
  { key: "version", short: "V", long: "version", takesValue: false },
  { key: "directory", short: "D", long: "directory", takesValue: true, env: "string" },
  { key: "dbname", short: "d", long: "dbname", takesValue: true, env: "string" },
  { key: "endpos", short: "E", long: "endpos", takesValue: true, env: "string" },
  { key: "host", short: "h", long: "host", takesValue: true, env: "string" },
  { key: "port", short: "p", long: "port", takesValue: true, env: "string" },
  { key: "username", short: "U", long: "username", takesValue: true, env: "string" },
  { key: "noLoop", short: "n", long: "no-loop", takesValue: false, env: "boolean" },
  { key: "noPassword", short: "w", long: "no-password", takesValue: false, env: "boolean" },
  { key: "password", short: "W", long: "password", takesValue: false, env: "boolean" },
  { key: "statusInterval", short: "s", long: "status-interval", takesValue: true, env: "string" },
  { key: "slot", short: "S", long: "slot", takesValue: true, env: "string" },
  { key: "verbose", short: "v", long: "verbose", takesValue: false, env: "count" },
  { key: "compress", short: "Z", long: "compress", takesValue: true, env: "string" },
  { key: "createSlot", long: "create-slot", takesValue: false, env: "boolean" },
  { key: "dropSlot", long: "drop-slot", takesValue: false, env: "boolean" },
  { key: "ifNotExists", long: "if-not-exists", takesValue: false, env: "boolean" },
  { key: "synchronous", long: "synchronous", takesValue: false, env: "boolean" },
  { key: "noSync", long: "no-sync", takesValue: false, env: "boolean" },
  { key: "logFormat", long: "log-format", takesValue: true, env: "string" },
  { key: "logLevel", long: "log-level", takesValue: true, env: "string" },
  { key: "onSegment", long: "on-segment", takesValue: true, env: "string" },
  { key: "hookHoldsSlot", long: "hook-holds-slot", takesValue: false, env: "boolean" },
  { key: "hookStateFile", long: "hook-state-file", takesValue: true, env: "string" },
  { key: "metricsListen", long: "metrics-listen", takesValue: true, env: "string" },
  { key: "target", long: "target", takesValue: true, env: "string" },
  { key: "s3Endpoint", long: "s3-endpoint", takesValue: true, env: "string" },
  { key: "s3Addressing", long: "s3-addressing-style", takesValue: true, env: "string" },
  { key: "uploadConcurrency", long: "upload-concurrency", takesValue: true, env: "string" },
  { key: "partialUploadInterval", long: "partial-upload-interval", takesValue: true, env: "string" },
  { key: "uploadHoldsSlot", long: "upload-holds-slot", takesValue: false, env: "boolean" },
  { key: "uploadStateFile", long: "upload-state-file", takesValue: true, env: "string" },
  { key: "retention", long: "retention", takesValue: true, env: "string" },
];

/** PGWAL_DIRECTORY for --directory, PGWAL_NO_LOOP for --no-loop, … */
export function envVariableName(longName: string): string {
  return `PGWAL_${longName.toUpperCase().replaceAll("-", "_")}`;
}

/** The largest -s pg_receivewal accepts: INT_MAX / 1000, since it keeps milliseconds in an int. */
export const MAX_STATUS_INTERVAL_SECONDS = Math.floor(0x7fff_ffff / 1000);

/** A usage problem found while reading values; becomes a "usage-error" outcome. */
class OptionProblem {
  constructor(
    readonly message: string,
    readonly showHint: boolean,
  ) {}
}

/**
 * Parses `pgwal receive` / `pg_receivewal` arguments (without the program name). Command-line
 * values beat PGWAL_* variables. Never throws for bad input: problems come back as outcomes whose
 * messages are pg_receivewal's.
 */
export function parseReceiveArgs(argv: readonly string[], context: ParseContext): ParseOutcome {
  const split = getoptLong(argv, RECEIVE_OPTIONS);
  if (!split.ok) return usageError(split.message, true);
  // pg_receivewal only honours these as the first argument; anywhere is friendlier and harmless.
  for (const option of split.options) {
    if (option.key === "help")
      return { kind: "help", text: receiveHelpText(context.programName), exitCode: ExitCode.Success };
    if (option.key === "version")
      return { kind: "version", text: versionLine(context.programName), exitCode: ExitCode.Success };
  }
  try {
    const given = collectValues(split.options, context.env ?? {});
    // Started as pg_receivewal, -Z zstd is refused as pg_receivewal refuses it.
    const allowZstd = context.programName !== "pg_receivewal";
    return { kind: "run", args: validate(given, split.operands, allowZstd) };
  } catch (error) {
    if (error instanceof OptionProblem) return usageError(error.message, error.showHint);
    throw error;
  }
}

function usageError(message: string, showHint: boolean): ParseOutcome {
  return { kind: "usage-error", message, showHint, exitCode: ExitCode.Failure };
}

/** Raw values after environment and command line, plus the values parsed where pg_receivewal parses them. */
interface GivenValues {
  strings: Partial<Record<OptionKey, string>>;
  flags: Partial<Record<OptionKey, boolean>>;
  verbose: number;
  /** The last of -w / -W wins, as in pg_receivewal. */
  prompt?: PasswordPrompt;
  endpos?: Lsn;
  statusIntervalSeconds?: number;
}

function collectValues(options: readonly ParsedOption[], env: NodeJS.ProcessEnv): GivenValues {
  const given: GivenValues = { strings: {}, flags: {}, verbose: 0 };
  const fromCommandLine = new Set(options.map((o) => o.key));
  for (const spec of RECEIVE_OPTIONS) {
    if (spec.env === undefined || spec.long === undefined || fromCommandLine.has(spec.key)) continue;
    const name = envVariableName(spec.long);
    const text = env[name];
    if (text === undefined || text === "") continue;
    if (spec.env === "string") {
      given.strings[spec.key] = text;
      if (spec.key === "endpos") given.endpos = parseEndposOption(text, name);
      if (spec.key === "statusInterval") given.statusIntervalSeconds = parseStatusInterval(text, name);
    } else if (spec.env === "boolean") {
      const on = parseEnvBoolean(name, text);
      // Of PGWAL_NO_PASSWORD and PGWAL_PASSWORD, "never prompt" is the safer reading when both are set.
      if (spec.key === "noPassword") given.prompt = on ? "never" : given.prompt;
      else if (spec.key === "password")
        given.prompt = on && given.prompt !== "never" ? "always" : given.prompt;
      else given.flags[spec.key] = on;
    } else {
      given.verbose = parseEnvCount(name, text);
    }
  }
  // Command line, in order: like getopt's loop, a bad -E or -s stops at the first one.
  for (const option of options) {
    const key = option.key as OptionKey;
    if (option.value === undefined) {
      if (key === "verbose") given.verbose += 1;
      else if (key === "noPassword") given.prompt = "never";
      else if (key === "password") given.prompt = "always";
      else given.flags[key] = true;
      continue;
    }
    given.strings[key] = option.value;
    if (key === "endpos") given.endpos = parseEndposOption(option.value);
    if (key === "statusInterval") given.statusIntervalSeconds = parseStatusInterval(option.value);
  }
  return given;
}

/** pg_receivewal's checks after option parsing, in its order. */
function validate(given: GivenValues, operands: readonly string[], allowZstd: boolean): ReceiveArgs {
  const { strings, flags } = given;
  if (operands.length > 0) {
    throw new OptionProblem(`too many command-line arguments (first is "${operands[0]}")`, true);
  }
  const createSlot = flags.createSlot === true;
  const dropSlot = flags.dropSlot === true;
  if (createSlot && dropSlot)
    throw new OptionProblem("cannot use --create-slot together with --drop-slot", true);
  if (strings.slot === undefined && (createSlot || dropSlot)) {
    throw new OptionProblem(
      `${dropSlot ? "--drop-slot" : "--create-slot"} needs a slot to be specified using --slot`,
      true,
    );
  }
  const synchronous = flags.synchronous === true;
  const noSync = flags.noSync === true;
  if (synchronous && noSync)
    throw new OptionProblem("cannot use --synchronous together with --no-sync", true);
  if (strings.directory === undefined && !createSlot && !dropSlot) {
    throw new OptionProblem("no target directory specified", true);
  }
  const compression = parseCompression(strings.compress, allowZstd);
  const hookHoldsSlot = flags.hookHoldsSlot === true;
  if (hookHoldsSlot && strings.onSegment === undefined)
    throw new OptionProblem("--hook-holds-slot needs a hook given with --on-segment", true);
  // Without a slot the server is never told a flush position, so there is nothing to hold.
  if (hookHoldsSlot && strings.slot === undefined)
    throw new OptionProblem("--hook-holds-slot needs a slot to be specified using --slot", true);
  if (strings.onSegment !== undefined && strings.onSegment.trim() === "")
    throw new OptionProblem("--on-segment needs a command", true);

  const uploads = validateUploadOptions(strings, flags);

  const args: ReceiveArgs = {
    ifNotExists: flags.ifNotExists === true,
    noLoop: flags.noLoop === true,
    noSync,
    statusIntervalSeconds: given.statusIntervalSeconds ?? 10,
    synchronous,
    verbose: given.verbose,
    compression,
    createSlot,
    dropSlot,
    passwordPrompt: given.prompt ?? "auto",
    hookHoldsSlot,
    ...uploads,
  };
  if (strings.directory !== undefined) args.directory = strings.directory;
  if (given.endpos !== undefined && given.endpos !== 0n) args.endpos = given.endpos;
  if (strings.slot !== undefined) args.slot = strings.slot;
  if (strings.dbname !== undefined) args.dbname = strings.dbname;
  if (strings.host !== undefined) args.host = strings.host;
  if (strings.port !== undefined) args.port = strings.port;
  if (strings.username !== undefined) args.username = strings.username;
  if (strings.logFormat !== undefined)
    args.logFormat = parseChoice<LogFormat>(strings.logFormat, "--log-format", ["json", "pretty"]);
  if (strings.logLevel !== undefined)
    args.logLevel = parseChoice(strings.logLevel, "--log-level", LOG_LEVELS);
  if (strings.onSegment !== undefined) args.onSegment = strings.onSegment;
  if (strings.hookStateFile !== undefined) args.hookStateFile = strings.hookStateFile;
  if (strings.metricsListen !== undefined) {
    const address = parseListenAddress(strings.metricsListen);
    if (address === undefined) {
      throw new OptionProblem(
        `invalid value "${strings.metricsListen}" for option --metrics-listen (expected HOST:PORT, e.g. 127.0.0.1:9187 or [::1]:9187)`,
        true,
      );
    }
    args.metricsListen = address;
  }
  if (strings.retention !== undefined) {
    const retentionMs = parseDuration(strings.retention);
    if (retentionMs === undefined)
      throw new OptionProblem(
        `invalid value "${strings.retention}" for option --retention (expected a duration, e.g. 36h or 7d)`,
        true,
      );
    args.retentionMs = retentionMs;
  }
  return args;
}

/** --target and the options that only make sense with it. */
function validateUploadOptions(
  strings: GivenValues["strings"],
  flags: GivenValues["flags"],
): Pick<
  ReceiveArgs,
  | "target"
  | "s3Endpoint"
  | "s3Addressing"
  | "uploadConcurrency"
  | "partialUploadIntervalSeconds"
  | "uploadHoldsSlot"
  | "uploadStateFile"
> {
  const target = strings.target;
  const uploadHoldsSlot = flags.uploadHoldsSlot === true;
  if (target !== undefined && !/^s3:\/\/[^/]+/.test(target))
    throw new OptionProblem(
      `invalid value "${target}" for option --target (expected s3://BUCKET/PREFIX)`,
      true,
    );
  if (target === undefined) {
    for (const [key, option] of [
      ["s3Endpoint", "--s3-endpoint"],
      ["s3Addressing", "--s3-addressing-style"],
      ["uploadConcurrency", "--upload-concurrency"],
      ["partialUploadInterval", "--partial-upload-interval"],
      ["uploadStateFile", "--upload-state-file"],
    ] as const) {
      if (strings[key] !== undefined)
        throw new OptionProblem(`${option} needs an object store given with --target`, true);
    }
    if (uploadHoldsSlot)
      throw new OptionProblem("--upload-holds-slot needs an object store given with --target", true);
  }
  if (uploadHoldsSlot && strings.slot === undefined)
    throw new OptionProblem("--upload-holds-slot needs a slot to be specified using --slot", true);
  const concurrency = parseWholeNumber(strings.uploadConcurrency ?? "4", "--upload-concurrency", 1, 64);
  const interval = parseWholeNumber(
    strings.partialUploadInterval ?? "10",
    "--partial-upload-interval",
    0,
    86_400,
  );
  const result: ReturnType<typeof validateUploadOptions> = {
    uploadConcurrency: concurrency,
    partialUploadIntervalSeconds: interval,
    uploadHoldsSlot,
  };
  if (target !== undefined) result.target = target;
  if (strings.s3Endpoint !== undefined) result.s3Endpoint = strings.s3Endpoint;
  if (strings.s3Addressing !== undefined)
    result.s3Addressing = parseChoice(strings.s3Addressing, "--s3-addressing-style", [
      "path",
      "virtual",
    ] as const);
  if (strings.uploadStateFile !== undefined) result.uploadStateFile = strings.uploadStateFile;
  return result;
}

function parseWholeNumber(text: string, option: string, min: number, max: number): number {
  const value = /^\s*[0-9]+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max)
    throw new OptionProblem(`invalid value "${text}" for option ${option} (expected ${min} to ${max})`, true);
  return value;
}

/**
 * "127.0.0.1:9187", "[::1]:9187", "localhost:0". The host is required: an exporter that listens
 * on every interface must be asked for explicitly ("0.0.0.0:9187").
 */
export function parseListenAddress(text: string): ListenAddress | undefined {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):([0-9]{1,5})$/.exec(text.trim());
  if (!match) return undefined;
  const port = Number(match[3]);
  if (port > 65535) return undefined;
  return { host: (match[1] ?? match[2])!, port };
}

function parseCompression(text: string | undefined, allowZstd: boolean): CompressionSpec {
  if (text === undefined) return { method: "none" };
  try {
    return parseCompressionSpec(text, { allowZstd });
  } catch (error) {
    throw new OptionProblem((error as PgwalError).message, false);
  }
}

function parseChoice<T extends string>(text: string, option: string, choices: readonly T[]): T {
  if ((choices as readonly string[]).includes(text)) return text as T;
  throw new OptionProblem(
    `invalid value "${text}" for option ${option} (choose from ${choices.join(", ")})`,
    true,
  );
}

/**
 * -E as pg_receivewal reads it with sscanf("%X/%X"): blanks, an optional "+" and "0x" before each
 * half, and anything after the second number ignored. A half that does not fit in 32 bits is an
 * error here (undefined in C).
 */
export function parseEndpos(text: string): Lsn | undefined {
  const match =
    /^\s*\+?(?:0[xX](?=[0-9A-Fa-f]))?([0-9A-Fa-f]+)\/\s*\+?(?:0[xX](?=[0-9A-Fa-f]))?([0-9A-Fa-f]+)/.exec(
      text,
    );
  if (!match) return undefined;
  const high = BigInt(`0x${match[1]}`);
  const low = BigInt(`0x${match[2]}`);
  if (high > 0xffff_ffffn || low > 0xffff_ffffn) return undefined;
  return (high << 32n) | low;
}

function parseEndposOption(text: string, envName?: string): Lsn {
  const lsn = parseEndpos(text);
  if (lsn === undefined) {
    const source = envName === undefined ? "" : ` in environment variable ${envName}`;
    throw new OptionProblem(`could not parse end position "${text}"${source}`, false);
  }
  return lsn;
}

/**
 * -s as PostgreSQL's option_parse_int reads it (strtol base 10, surrounding blanks allowed), with
 * its two messages: not a number, or outside 0..INT_MAX/1000. `source` names the option or the
 * PGWAL_* variable the text came from.
 */
export function parseStatusInterval(text: string, source = "-s/--status-interval"): number {
  const name = source.startsWith("PGWAL_") ? `environment variable ${source}` : `option ${source}`;
  const match = /^[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*$/.exec(text);
  const value = match ? BigInt(match[1]!) : undefined;
  // strtol's ERANGE (beyond a 64-bit long) is "invalid value" too.
  if (value === undefined || value > C_LONG_MAX || value < -C_LONG_MAX - 1n) {
    throw new OptionProblem(`invalid value "${text}" for ${name}`, false);
  }
  if (value < 0n || value > BigInt(MAX_STATUS_INTERVAL_SECONDS)) {
    throw new OptionProblem(`${source} must be in range 0..${MAX_STATUS_INTERVAL_SECONDS}`, false);
  }
  return Number(value);
}

const C_LONG_MAX = 0x7fff_ffff_ffff_ffffn;

const TRUE_WORDS = new Set(["1", "true", "yes", "on"]);
const FALSE_WORDS = new Set(["0", "false", "no", "off"]);

function parseEnvBoolean(name: string, text: string): boolean {
  const word = text.trim().toLowerCase();
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  // PGWAL_PASSWORD=secret is an easy mistake (-W only asks for a prompt): never echo that value.
  if (name === envVariableName("password")) {
    throw new OptionProblem(
      `environment variable ${name} must be true or false (it forces a password prompt like -W); put passwords in PGPASSWORD or ~/.pgpass`,
      false,
    );
  }
  throw new OptionProblem(
    `invalid value "${text}" for environment variable ${name} (expected true or false)`,
    false,
  );
}

function parseEnvCount(name: string, text: string): number {
  const word = text.trim().toLowerCase();
  if (/^[0-9]+$/.test(word)) return Number(word);
  if (TRUE_WORDS.has(word)) return 1;
  if (FALSE_WORDS.has(word)) return 0;
  throw new OptionProblem(
    `invalid value "${text}" for environment variable ${name} (expected a count)`,
    false,
  );
}
