/**
 * sd_notify for `Type=notify` units: READY=1 once streaming, STATUS=… on progress, WATCHDOG=1 at
 * half the watchdog interval, STOPPING=1 on the way out.
 *
 * The notify socket is a unix datagram socket, which Node cannot open (node:net is stream-only,
 * node:dgram is UDP-only) and the npm packages that can (sd-notify, unix-dgram) are native
 * builds. So each message is handed to systemd's own `systemd-notify`, which exists wherever
 * systemd set NOTIFY_SOCKET. Since systemd 246 it waits for the manager to process the message
 * (BARRIER=1), so a message from this short-lived child is attributed to the unit as long as the
 * unit allows it (NotifyAccess=all, as in contrib/systemd/pgwal@.service). Messages are sent one at a
 * time, in order; a missing or failing systemd-notify is logged once and never stops streaming.
 */
import { spawn } from "node:child_process";
import type { ReceiverLogger } from "../receiver/logger.js";

/** Sends one notification made of KEY=VALUE assignments; resolves when delivered, rejects on failure. */
export type NotifySend = (assignments: readonly string[]) => Promise<void>;

export interface SystemdNotifierOptions {
  env: NodeJS.ProcessEnv;
  logger: ReceiverLogger;
  /** How messages are delivered (default: the systemd-notify program). */
  send?: NotifySend;
  /** Process id compared with WATCHDOG_PID (default: this process). */
  pid?: number;
}

/** Runs `systemd-notify KEY=VALUE…` with NOTIFY_SOCKET from `env`. */
export function systemdNotifyProgram(env: NodeJS.ProcessEnv, program = "systemd-notify"): NotifySend {
  return (assignments) =>
    new Promise((resolve, reject) => {
      const child = spawn(program, [...assignments], {
        stdio: ["ignore", "ignore", "pipe"],
        env: { PATH: env.PATH ?? "/usr/bin:/bin", NOTIFY_SOCKET: env.NOTIFY_SOCKET },
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        if (stderr.length < 1000) stderr += chunk.toString("utf8");
      });
      child.on("error", reject);
      child.on("close", (code, signal) => {
        if (code === 0) resolve();
        else
          reject(
            new Error(
              `${program} ${signal ? `killed by ${signal}` : `exited with ${code}`}: ${stderr.trim()}`,
            ),
          );
      });
    });
}

/** The watchdog ping interval: half of WATCHDOG_USEC, when the watchdog is meant for this process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv, pid: number): number | undefined {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return undefined;
  if (env.WATCHDOG_PID !== undefined && env.WATCHDOG_PID !== "" && Number(env.WATCHDOG_PID) !== pid)
    return undefined;
  return Math.max(1, Math.floor(usec / 1000 / 2));
}

/** A STATUS= text must be one line. */
function oneLine(text: string): string {
  return text.replace(/[\r\n]+/g, " ");
}

export class SystemdNotifier {
  /** False when NOTIFY_SOCKET is not set: every method is then a no-op. */
  readonly enabled: boolean;
  private readonly send: NotifySend;
  private readonly logger: ReceiverLogger;
  private queue: Promise<void> = Promise.resolve();
  private failed = false;
  private readySent = false;
  private lastStatus: string | undefined;
  private watchdog: NodeJS.Timeout | undefined;
  private readonly watchdogMs: number | undefined;

  constructor(options: SystemdNotifierOptions) {
    this.enabled = options.env.NOTIFY_SOCKET !== undefined && options.env.NOTIFY_SOCKET !== "";
    this.send = options.send ?? systemdNotifyProgram(options.env);
    this.logger = options.logger;
    this.watchdogMs = this.enabled ? watchdogIntervalMs(options.env, options.pid ?? process.pid) : undefined;
  }

  /** Starts the watchdog pings (if WATCHDOG_USEC asks for them). */
  startWatchdog(): void {
    if (this.watchdogMs === undefined || this.watchdog !== undefined) return;
    this.watchdog = setInterval(() => void this.notify(["WATCHDOG=1"]), this.watchdogMs);
    this.watchdog.unref();
  }

  /** READY=1 (once) with the current status. */
  ready(status: string): Promise<void> {
    if (this.readySent) return this.status(status);
    this.readySent = true;
    this.lastStatus = oneLine(status);
    return this.notify(["READY=1", `STATUS=${this.lastStatus}`]);
  }

  /** STATUS=…, only when it changed. */
  status(text: string): Promise<void> {
    const line = oneLine(text);
    if (line === this.lastStatus) return this.queue;
    this.lastStatus = line;
    return this.notify([`STATUS=${line}`]);
  }

  /** STOPPING=1; stops the watchdog. Resolves once every queued message is delivered (or failed). */
  stopping(status = "stopping"): Promise<void> {
    if (this.watchdog !== undefined) clearInterval(this.watchdog);
    this.watchdog = undefined;
    return this.notify(["STOPPING=1", `STATUS=${oneLine(status)}`]);
  }

  private notify(assignments: readonly string[]): Promise<void> {
    if (!this.enabled || this.failed) return this.queue;
    this.queue = this.queue.then(() =>
      this.send(assignments).catch((error: unknown) => {
        // Once is enough: a unit without NotifyAccess or a host without systemd-notify will not heal.
        this.failed = true;
        this.logger.warn(
          { err: error instanceof Error ? error.message : String(error) },
          `could not notify systemd (${assignments[0]}); further notifications are skipped`,
        );
      }),
    );
    return this.queue;
  }
}
