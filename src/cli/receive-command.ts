/**
 * `pgwal receive` / `pg_receivewal`: the steps of pg_receivewal's main() once the options are
 * valid. Check the directory, connect once (prompting if needed) and make sure the connection is
 * a physical replication one, do the slot action and exit, or hand over to the WalReceiver until
 * a signal, --endpos, or an error it cannot retry.
 */
import { opendir } from "node:fs/promises";
import path from "node:path";
import { type LockAttempt, tryLockArchive } from "../archive/archive-lock.js";
import { identifySystem } from "../connection/commands.js";
import type { ConnectionSettings } from "../connection/conninfo.js";
import { UsageError } from "../errors.js";
import type { SegmentHookRunner } from "../hooks/segment-hooks.js";
import { formatLsn, type Lsn, minLsn } from "../lsn.js";
import type { ArchiveRetention } from "../receiver/archive-retention.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import { WalReceiver } from "../receiver/receiver.js";
import type { WalUploader } from "../store/wal-uploader.js";
import { buildConnectionSettings, connectFirst } from "./connect.js";
import { ExitCode, type ExitCodeValue } from "./exit-codes.js";
import type { MetricsServer } from "./metrics-server.js";
import type { ReceiveArgs } from "./options.js";
import type { PromptResult } from "./password-prompt.js";
import { ProgressLine, type ProgressSample } from "./progress-line.js";
import { checkServerVersionForStreaming } from "./server-version.js";
import { handleStopSignals, type SignalSource, type StopSignal } from "./signals.js";
import { runSlotAction } from "./slot-commands.js";
import { SystemdNotifier } from "./systemd-notify.js";

export interface ReceiveCommandContext {
  programName: string;
  env: NodeJS.ProcessEnv;
  logger: ReceiverLogger;
  askPassword: () => Promise<PromptResult | undefined>;
  /** Where SIGINT/SIGTERM come from (default: the process). */
  signals?: SignalSource;
  /** Called on a second stop signal (default: exit 1 at once). */
  forceExit?: (signal: StopSignal) => void;
  /** Where the catch-up progress line goes (a terminal); absent = no progress line. */
  progressOutput?: (text: string) => void;
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
  const { connection, settings } = await connectFirst(baseSettings, {
    prompt: args.passwordPrompt,
    askPassword: context.askPassword,
    logger,
  });

  try {
    checkServerVersionForStreaming(connection.serverVersionNum, connection.parameters.get("server_version"));
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
  const directory = args.directory!;
  // The receiver is created below; the line only samples it once streaming has begun.
  let positions: (() => ProgressSample) | undefined;
  const progress: ProgressLine | undefined =
    context.progressOutput === undefined
      ? undefined
      : new ProgressLine({ write: context.progressOutput, sample: () => positions?.() });
  const logger = progress === undefined ? context.logger : progress.wrapLogger(context.logger);
  // Hooks and metrics are loaded only when asked for: prom-client and http alone are ~10 MB of RSS.
  let hooks: SegmentHookRunner | undefined;
  if (args.onSegment !== undefined) {
    const { defaultHookStateFile, SegmentHookRunner } = await import("../hooks/segment-hooks.js");
    hooks = new SegmentHookRunner({
      command: args.onSegment,
      directory,
      stateFile: args.hookStateFile ?? (await defaultHookStateFile(directory, context.env)),
      logger,
      compression: args.compression.method,
    });
  }
  // The S3 client is loaded only for an s3:// target; keys and bucket are checked before streaming.
  let uploader: WalUploader | undefined;
  if (args.target !== undefined) {
    const { prepareUploads } = await import("../store/receive-uploads.js");
    uploader = await prepareUploads({ ...args, target: args.target, directory }, logger, context.env);
  }
  const holds: (() => Lsn)[] = [];
  if (args.hookHoldsSlot && hooks !== undefined) holds.push(() => hooks.holdPosition);
  if (args.uploadHoldsSlot && uploader !== undefined) holds.push(() => uploader.holdPosition);
  const receiver = new WalReceiver({
    connection: settings,
    directory,
    slot: args.slot,
    synchronous: args.synchronous,
    noSync: args.noSync,
    statusIntervalSeconds: args.statusIntervalSeconds,
    endpos: args.endpos,
    noLoop: args.noLoop,
    compression: args.compression,
    logger,
    flushCap: holds.length === 0 ? undefined : () => holds.map((hold) => hold()).reduce(minLsn),
  });
  positions = () => receiver.positions;
  let retention: ArchiveRetention | undefined;
  if (args.retentionMs !== undefined) {
    const keeps: (() => Lsn)[] = [];
    if (hooks !== undefined) keeps.push(() => hooks.holdPosition);
    if (uploader !== undefined) keeps.push(() => uploader.holdPosition);
    const { ArchiveRetention } = await import("../receiver/archive-retention.js");
    const runner = new ArchiveRetention({
      directory,
      keepMs: args.retentionMs,
      logger,
      // Nothing a hook or an upload still needs is removed, whatever the *-holds-slot flags say.
      holdPosition: keeps.length === 0 ? undefined : () => keeps.map((keep) => keep()).reduce(minLsn),
    });
    let segmentSize = 0;
    receiver.on("connected", (event) => {
      segmentSize = event.segmentSize;
    });
    receiver.on("segment", () => runner.segmentCompleted(segmentSize));
    retention = runner;
  }
  let hookStartFailure: unknown;
  if (hooks !== undefined) {
    receiver.on("connected", (event) => {
      hooks.start(event.segmentSize).catch((error: unknown) => {
        // Without its state file the runner cannot tell what is done: stop rather than re-run everything.
        hookStartFailure ??= error;
        receiver.stop();
      });
    });
    receiver.on("segment", (event) => hooks.enqueue(path.basename(event.path)));
    receiver.on("history", (event) => hooks.enqueue(path.basename(event.path)));
  }
  let uploadFailure: unknown;
  if (uploader !== undefined) {
    const { followReceiver } = await import("../store/receive-uploads.js");
    followReceiver(uploader, receiver, (error) => {
      // Bad keys, a denied PUT, another cluster's object: stop with that one line; the archive is intact.
      uploadFailure ??= error;
      receiver.stop();
    });
  }
  const notifier = new SystemdNotifier({ env: context.env, logger });
  if (notifier.enabled) {
    notifier.startWatchdog();
    receiver.on(
      "streaming",
      (event) =>
        void notifier.ready(`streaming from ${formatLsn(event.start)} on timeline ${event.timeline}`),
    );
    receiver.on(
      "disconnected",
      (event) =>
        void notifier.status(
          event.retryInMs === undefined
            ? `stopped: ${event.error.message}`
            : `disconnected: ${event.error.message}; reconnecting in ${(event.retryInMs / 1000).toFixed(1)} s`,
        ),
    );
  }
  const statusTimer = notifier.enabled
    ? setInterval(() => {
        if (receiver.positions.lastMessageAt > 0) void notifier.status(describePosition(receiver.positions));
      }, STATUS_NOTIFY_INTERVAL_MS).unref()
    : undefined;
  let metrics: { markStopped(): void } | undefined;
  let metricsServer: MetricsServer | undefined;
  if (args.metricsListen !== undefined) {
    const { ReceiverMetrics } = await import("./metrics.js");
    const { formatListenAddress, startMetricsServer } = await import("./metrics-server.js");
    const receiverMetrics = new ReceiverMetrics(receiver, {
      statusIntervalSeconds: args.statusIntervalSeconds,
      hooks,
      uploader,
    });
    metrics = receiverMetrics;
    metricsServer = await startMetricsServer(receiverMetrics, args.metricsListen);
    const where = formatListenAddress(metricsServer.address);
    logger.info(
      { listen: where, port: metricsServer.address.port },
      `serving metrics on http://${where}/metrics and health on http://${where}/healthz`,
    );
  }
  if (progress !== undefined) {
    receiver.on("streaming", () => progress.start());
  }

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
  // Tells `pgwal cleanup` a receiver is writing here. Not a guard against a second receiver: any
  // local user can bind an abstract socket name, and that must not be able to stop archiving.
  const lockAttempt = await tryLockArchive(directory).catch((error: unknown): LockAttempt => {
    logger.warn({ err: error }, `could not take the lock of archive "${directory}": ${String(error)}`);
    return { acquired: false };
  });
  if (!lockAttempt.acquired && lockAttempt.holderPid !== undefined) {
    logger.warn(
      { holderPid: lockAttempt.holderPid },
      `process ${lockAttempt.holderPid} holds the lock of archive "${directory}": is a second receiver writing it?`,
    );
  }
  let stopReason = "stopped";
  try {
    const exit = await receiver.run();
    if (hookStartFailure !== undefined) throw hookStartFailure;
    if (uploadFailure !== undefined) throw uploadFailure;
    const { written, timeline } = receiver.positions;
    if (exit.reason === "endpos") {
      stopReason = `stopped at --endpos ${formatLsn(written)}`;
      logger.info(
        { lsn: formatLsn(written), timeline },
        `stopped log streaming at ${formatLsn(written)} (timeline ${timeline})`,
      );
    }
    return ExitCode.Success;
  } catch (error) {
    stopReason = `failed: ${error instanceof Error ? error.message : String(error)}`;
    throw error;
  } finally {
    progress?.stop();
    metrics?.markStopped();
    if (statusTimer !== undefined) clearInterval(statusTimer);
    // The hook in progress finishes (it may be copying the segment somewhere); no new one starts.
    if (hooks !== undefined) {
      if (hooks.pendingCount > 0)
        logger.info({ pending: hooks.pendingCount }, "waiting for the running segment hook before exiting");
      await hooks.stop();
    }
    if (uploader !== undefined) {
      // Uploads in flight get a short grace; whatever is not confirmed is uploaded after a restart.
      await uploader.stop();
      uploader.destroy();
    }
    await retention?.stop();
    if (lockAttempt.acquired) await lockAttempt.lock.release();
    await notifier.stopping(stopReason);
    await metricsServer?.close();
    removeSignalHandlers();
  }
}

/** How often systemd's STATUS= line follows the positions (it only changes when they do). */
const STATUS_NOTIFY_INTERVAL_MS = 5000;

/** One line for `systemctl status`: where streaming is and how far behind the server. */
export function describePosition(p: WalReceiver["positions"]): string {
  const lag = p.serverEnd > p.flushed ? p.serverEnd - p.flushed : 0n;
  return `streaming timeline ${p.timeline}: received ${formatLsn(p.received)}, flushed ${formatLsn(p.flushed)}, server ${formatLsn(p.serverEnd)} (lag ${lag} bytes)`;
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
