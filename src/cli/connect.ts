/**
 * How the CLI reaches the server: connection settings with pg_receivewal's precedence, and the
 * first connection with libpq-style password prompting (-W before connecting, otherwise only when
 * the server asks and there is a terminal; -w never).
 */
import { PgConnection } from "../connection/connection.js";
import {
  type ConnectionSettings,
  type ConnParams,
  parseConnectionString,
  resolveConnectionSettings,
} from "../connection/conninfo.js";
import { AuthenticationError, UsageError } from "../errors.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import type { PasswordPrompt, ReceiveArgs } from "./options.js";
import type { PromptResult } from "./password-prompt.js";

/**
 * -h/-p/-U beat the -d connection string, which beats PG* variables and defaults. Physical
 * replication is forced; the database name is "replication" unless -d names one (PostgreSQL 17
 * passes it on, for poolers), and the fallback application name is the program's name.
 */
export function buildConnectionSettings(
  args: Pick<ReceiveArgs, "dbname" | "host" | "port" | "username">,
  programName: string,
  env: NodeJS.ProcessEnv,
): ConnectionSettings {
  const overrides: ConnParams = { fallback_application_name: programName };
  if (args.host !== undefined) overrides.host = args.host;
  if (args.port !== undefined) overrides.port = args.port;
  if (args.username !== undefined) overrides.user = args.username;
  const forced: ConnParams = { replication: "true" };
  const givenDbname = args.dbname === undefined ? undefined : parseConnectionString(args.dbname).dbname;
  if (givenDbname === undefined || givenDbname === "") forced.dbname = "replication";
  return resolveConnectionSettings({ overrides, connectionString: args.dbname, forced, env });
}

/**
 * True when the connection failed only because a password was needed and none was available.
 * The connection layer reports this as an AuthenticationError with libpq's wording.
 */
export function isMissingPasswordError(error: unknown): boolean {
  return error instanceof AuthenticationError && /no password supplied/.test(error.message);
}

export interface FirstConnectionOptions {
  prompt: PasswordPrompt;
  /** Asks the user; undefined when there is no terminal to ask on. */
  askPassword: () => Promise<PromptResult | undefined>;
  logger: ReceiverLogger;
}

/**
 * Connects once, prompting as pg_receivewal would. Returns the connection and the settings to
 * reuse for reconnecting (holding the typed password, so the user is asked only once).
 */
export async function connectFirst(
  settings: ConnectionSettings,
  options: FirstConnectionOptions,
): Promise<{ connection: PgConnection; settings: ConnectionSettings }> {
  let current = settings;
  const connectOptions = {
    onNotice: (n: { code: string; message: string }) => options.logger.warn({ sqlstate: n.code }, n.message),
    onWarning: (message: string) => options.logger.warn({}, message),
  };
  if (options.prompt === "always") current = await withPromptedPassword(current, options);
  try {
    return { connection: await PgConnection.connect(current, connectOptions), settings: current };
  } catch (error) {
    const mayAsk = options.prompt === "auto" && current.password === undefined;
    if (!mayAsk || !isMissingPasswordError(error)) throw error;
    const prompted = await withPromptedPassword(current, options);
    if (prompted === current) throw error;
    return { connection: await PgConnection.connect(prompted, connectOptions), settings: prompted };
  }
}

async function withPromptedPassword(
  settings: ConnectionSettings,
  options: FirstConnectionOptions,
): Promise<ConnectionSettings> {
  const answer = await options.askPassword();
  if (answer === undefined) {
    options.logger.debug({}, "no terminal to prompt for a password on");
    return settings;
  }
  if (answer.kind === "cancelled") throw new UsageError("password prompt cancelled");
  // An empty answer means "none", as in libpq: .pgpass may still supply one.
  return answer.password === "" ? settings : { ...settings, password: answer.password };
}
