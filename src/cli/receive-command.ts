/**
 * `pgwal receive` / `pg_receivewal`: the steps of pg_receivewal's main() once the options are
 * valid. Check the directory, connect once (prompting if needed) and make sure the connection is
 * a physical replication one, do the slot action and exit, or hand over to the WalReceiver until
 * a signal, --endpos, or an error it cannot retry.
 */
import { opendir } from "node:fs/promises";
import { identifySystem } from "../connection/commands.js";
import type { ConnectionSettings } from "../connection/conninfo.js";
import { UsageError } from "../errors.js";
import { formatLsn } from "../lsn.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import { WalReceiver } from "../receiver/receiver.js";
import { buildConnectionSettings, connectFirst } from "./connect.js";
import { ExitCode, type ExitCodeValue } from "./exit-codes.js";
import type { ReceiveArgs } from "./options.js";
import type { PromptResult } from "./password-prompt.js";
import { handleStopSignals, type SignalSource, type StopSignal } from "./signals.js";
import { runSlotAction } from "./slot-commands.js";

export interface ReceiveCommandContext {
  programName: string;
  env: NodeJS.ProcessEnv;
  logger: ReceiverLogger;
  askPassword: () => Promise<PromptResult | undefined>;
  /** Where SIGINT/SIGTERM come from (default: the process). */
  signals?: SignalSource;
  /** Called on a second stop signal (default: exit 1 at once). */
  forceExit?: (signal: StopSignal) => void;
  /** Receives every password the command learns, so error output can mask it. */
  onSecret?: (secret: string) => void;
}

/** Runs the command; resolves to the exit code, or throws a PgwalError for the caller to report. */
export async function runReceiveCommand(
  args: ReceiveArgs,
  context: ReceiveCommandContext,
): Promise<ExitCodeValue> {
  const { logger } = context;
  const slotAction = args.createSlot || args.dropSlot;
  if (!slotAction) await checkDirectory(args.directory!);

  const baseSettings = buildConnectionSettings(args, context.programName, context.env);
  if (baseSettings.password !== undefined) context.onSecret?.(baseSettings.password);
  const { connection, settings } = await connectFirst(baseSettings, {
    prompt: args.passwordPrompt,
    askPassword: context.askPassword,
    logger,
  });
  if (settings.password !== undefined) context.onSecret?.(settings.password);

  try {
    const identity = await identifySystem(connection);
    if (identity.dbname !== null) {
      throw new UsageError(
        `replication connection using slot "${args.slot ?? "(null)"}" is unexpectedly database specific`,
      );
    }
    if (args.dropSlot) {
      await runSlotAction(connection, { kind: "drop", slot: args.slot! }, logger);
      return ExitCode.Success;
    }
    if (args.createSlot) {
      await runSlotAction(
        connection,
        { kind: "create", slot: args.slot!, ifNotExists: args.ifNotExists },
        logger,
      );
      return ExitCode.Success;
    }
  } finally {
    await connection.close().catch(() => undefined);
  }
  return stream(args, settings, context);
}

/** Streams until stopped. The receiver opens its own connections (and reconnects). */
async function stream(
  args: ReceiveArgs,
  settings: ConnectionSettings,
  context: ReceiveCommandContext,
): Promise<ExitCodeValue> {
  const { logger } = context;
  const receiver = new WalReceiver({
    connection: settings,
    directory: args.directory!,
    slot: args.slot,
    synchronous: args.synchronous,
    noSync: args.noSync,
    statusIntervalSeconds: args.statusIntervalSeconds,
    endpos: args.endpos,
    noLoop: args.noLoop,
    compression: args.compression,
    logger,
  });
  const removeSignalHandlers = handleStopSignals(
    {
      stop: (signal) => {
        logger.info({ signal }, "received interrupt signal, exiting");
        receiver.stop();
      },
      force:
        context.forceExit ??
        ((signal) => {
          logger.warn({ signal }, "second stop signal: exiting without waiting for the current write");
          process.exit(ExitCode.Failure);
        }),
    },
    context.signals,
  );
  try {
    const exit = await receiver.run();
    const { written, timeline } = receiver.positions;
    if (exit.reason === "endpos") {
      logger.info(
        { lsn: formatLsn(written), timeline },
        `stopped log streaming at ${formatLsn(written)} (timeline ${timeline})`,
      );
    }
    return ExitCode.Success;
  } finally {
    removeSignalHandlers();
  }
}

/** pg_receivewal opens the directory before connecting, so a typo fails at once. */
async function checkDirectory(directory: string): Promise<void> {
  try {
    const dir = await opendir(directory);
    await dir.close();
  } catch (error) {
    throw new UsageError(`could not open directory "${directory}": ${describeErrno(error)}`, {
      cause: error,
    });
  }
}

/** strerror() wording for the errors opendir meets, so messages read like pg_receivewal's. */
const STRERROR: Record<string, string> = {
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  ENOTDIR: "Not a directory",
  ELOOP: "Too many levels of symbolic links",
  ENAMETOOLONG: "File name too long",
  EMFILE: "Too many open files",
};

function describeErrno(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && STRERROR[code] !== undefined) return STRERROR[code];
  return error instanceof Error ? error.message : String(error);
}
