import { spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import { readdir, readFile } from "node:fs/promises";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { StorageError, UnsafeFileNameError } from "../errors.js";
import { formatLsn, type Lsn, parseLsn } from "../lsn.js";
import { escapeControlCharacters } from "../protocol/untrusted-text.js";
import { Backoff } from "../receiver/backoff.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import { perArchiveStateFile, writeStateFileDurably } from "../state-files.js";
import type { CompressionMethod } from "../wal/compression.js";
import { parseArchiveFileName, parseHistoryFileName, parseWalFileName } from "../wal/names.js";

/**
 * Runs a command (like archive_command) for every durably completed segment and history file, in
 * order, one at a time, off the streaming path. Failures are retried with backoff until they
 * succeed. Which files are done is kept in a small state file OUTSIDE the archive directory
 * (tools such as Barman treat unknown files in it as errors), so a restart retries exactly the
 * files whose hook never succeeded.
 */

export interface SegmentHookOptions {
  /** Shell command; %p is replaced by the file's path, %f by its name, %% by %. */
  command: string;
  directory: string;
  /** Where progress is kept (default: see defaultHookStateFile). */
  stateFile: string;
  logger: ReceiverLogger;
  retryDelayMs?: { initial: number; max: number };
  /** fsync of a directory, for the state file's creation and rename (tests record the calls). */
  fsyncDirectory?: (directory: string) => Promise<void>;
  /** The archive's compression: completed segments are enqueued with its suffix only (default: any). */
  compression?: CompressionMethod;
}

export interface HookEvents {
  succeeded: [{ fileName: string; path: string; endLsn: Lsn | undefined }];
  failed: [{ fileName: string; error: string; attempt: number; retryInMs: number }];
}

interface HookState {
  /** Files whose hook succeeded and that may still be in the archive. */
  done: string[];
  /** End of the newest segment whose hook succeeded (for --hook-holds-slot). */
  heldUpTo?: string;
}

/** Default state file: systemd's $STATE_DIRECTORY, else $XDG_STATE_HOME or ~/.local/state, per archive. */
export function defaultHookStateFile(
  directory: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  return perArchiveStateFile("hooks", directory, env);
}

/** archive_command-style substitution. Like PostgreSQL, paths are inserted without shell quoting. */
export function substituteHookCommand(command: string, filePath: string, fileName: string): string {
  return command.replace(/%[pf%]/g, (token) => (token === "%p" ? filePath : token === "%f" ? fileName : "%"));
}

export class SegmentHookRunner extends EventEmitter<HookEvents> {
  private readonly queue: { fileName: string; endLsn: Lsn | undefined }[] = [];
  private readonly done = new Set<string>();
  private heldUpTo: Lsn = 0n;
  private running: Promise<void> | undefined;
  private stopping = false;
  private wake: (() => void) | undefined;
  private failures = 0;
  private segmentSize = 0;

  constructor(private readonly options: SegmentHookOptions) {
    super();
  }

  /** Failed attempts so far (for metrics). */
  get failureCount(): number {
    return this.failures;
  }

  /** Files waiting for their hook. */
  get pendingCount(): number {
    return this.queue.length;
  }

  /**
   * The flush position the server may be told with --hook-holds-slot: the end of the newest
   * segment that has left the machine (0 until one has).
   */
  get holdPosition(): Lsn {
    return this.heldUpTo;
  }

  /**
   * Loads progress and queues every complete file in the archive whose hook has not succeeded.
   * Called once the server has told us its segment size (needed to turn names into LSNs).
   */
  async start(segmentSize: number): Promise<void> {
    if (this.running) return;
    this.segmentSize = segmentSize;
    const state = await this.loadState();
    for (const name of state.done) this.done.add(name);
    if (state.heldUpTo) this.heldUpTo = parseLsn(state.heldUpTo);
    const queued = new Set(this.queue.map((q) => q.fileName));
    const names = (await readdir(this.options.directory)).filter(
      (n) => this.isHookable(n) && !this.done.has(n) && !queued.has(n),
    );
    // Files found on disk were completed before any enqueued by this run: they go first.
    this.queue.unshift(
      ...names.sort(compareStreamOrder).map((name) => ({ fileName: name, endLsn: this.segmentEnd(name) })),
    );
    for (const q of this.queue) q.endLsn ??= this.segmentEnd(q.fileName);
    if (this.queue.length > 0) {
      this.options.logger.info(
        { pending: this.queue.length },
        `${this.queue.length} file(s) still need the segment hook`,
      );
    }
    this.running = this.loop();
  }

  /**
   * A segment or history file has been made durable under its final name. Throws
   * UnsafeFileNameError for any name pgwal does not build, so no other string reaches the shell.
   */
  enqueue(fileName: string): void {
    this.checkBuiltName(fileName);
    if (this.done.has(fileName) || this.queue.some((q) => q.fileName === fileName)) return;
    this.queue.push({ fileName, endLsn: this.segmentEnd(fileName) });
    this.wake?.();
  }

  /** Stops after the hook in progress (which is not interrupted). */
  async stop(): Promise<void> {
    this.stopping = true;
    this.wake?.();
    await this.running;
  }

  /** Names pgwal writes: TTTTTTTT.history, or a complete segment with the archive's compression suffix. */
  private checkBuiltName(name: string): void {
    const segment = parseArchiveFileName(name);
    const expected = this.options.compression;
    const built =
      parseHistoryFileName(name) !== undefined ||
      (segment !== undefined &&
        !segment.partial &&
        (expected === undefined || segment.compression === expected));
    if (!built) {
      throw new UnsafeFileNameError(
        `refusing to run the segment hook for a file name pgwal did not build: "${escapeControlCharacters(name)}"`,
      );
    }
  }

  private isHookable(name: string): boolean {
    if (parseHistoryFileName(name) !== undefined) return true;
    const parsed = parseArchiveFileName(name);
    return parsed !== undefined && !parsed.partial;
  }

  private segmentEnd(name: string): Lsn | undefined {
    const parsed = parseArchiveFileName(name);
    // Before start() the segment size is unknown; start() fills in the end of what was queued.
    if (!parsed || parsed.partial || this.segmentSize === 0) return undefined;
    const wal = parseWalFileName(parsed.walFileName, this.segmentSize);
    return wal ? (wal.segNo + 1n) * BigInt(this.segmentSize) : undefined;
  }

  private async loop(): Promise<void> {
    const { initial, max } = this.options.retryDelayMs ?? { initial: 1000, max: 60_000 };
    const backoff = new Backoff(initial, max);
    while (!this.stopping) {
      const next = this.queue[0];
      if (next === undefined) {
        await new Promise<void>((resolve) => {
          this.wake = resolve;
        });
        this.wake = undefined;
        continue;
      }
      const filePath = path.join(this.options.directory, next.fileName);
      const command = substituteHookCommand(this.options.command, filePath, next.fileName);
      const error = await runShell(command);
      if (error === undefined) {
        this.queue.shift();
        this.done.add(next.fileName);
        if (next.endLsn !== undefined && next.endLsn > this.heldUpTo) this.heldUpTo = next.endLsn;
        await this.saveState().catch((error: unknown) =>
          // The hook ran; losing the record only means it runs again after a restart.
          this.options.logger.warn(
            { file: next.fileName },
            `could not record hook progress: ${String(error)}`,
          ),
        );
        backoff.reset();
        this.options.logger.info(
          {
            file: next.fileName,
            segment: next.fileName.slice(0, 24),
            lsn: next.endLsn !== undefined ? formatLsn(next.endLsn) : undefined,
          },
          `segment hook succeeded for "${next.fileName}"`,
        );
        this.emit("succeeded", { fileName: next.fileName, path: filePath, endLsn: next.endLsn });
        continue;
      }
      this.failures++;
      const delay = backoff.next();
      this.options.logger.warn(
        { file: next.fileName, attempt: backoff.attempts, retryInMs: delay },
        `segment hook failed for "${next.fileName}": ${error}; retrying in ${(delay / 1000).toFixed(1)} s`,
      );
      this.emit("failed", { fileName: next.fileName, error, attempt: backoff.attempts, retryInMs: delay });
      for (let waited = 0; waited < delay && !this.stopping; waited += 100)
        await sleep(Math.min(100, delay - waited));
    }
  }

  private async loadState(): Promise<HookState> {
    try {
      const parsed = JSON.parse(await readFile(this.options.stateFile, "utf8")) as Partial<HookState>;
      return { done: Array.isArray(parsed.done) ? parsed.done.map(String) : [], heldUpTo: parsed.heldUpTo };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { done: [] };
      throw new StorageError("read", this.options.stateFile, error);
    }
  }

  /** Durable write (temp file, fsync, rename) so a crash never loses or corrupts progress. */
  private async saveState(): Promise<void> {
    const file = this.options.stateFile;
    // Only names still in the archive matter; keep the state small as old segments are removed.
    const present = new Set(await readdir(this.options.directory));
    const state: HookState = {
      done: [...this.done].filter((n) => present.has(n)),
      heldUpTo: this.heldUpTo > 0n ? formatLsn(this.heldUpTo) : undefined,
    };
    for (const name of this.done) if (!present.has(name)) this.done.delete(name);
    await writeStateFileDurably(file, JSON.stringify(state), this.options.fsyncDirectory);
  }
}

/**
 * Order in which files were completed: history files first (a timeline's history is written before
 * its segments), then segments by position (the 16 hex digits after the timeline sort like the
 * segment number for any segment size), then by timeline.
 */
export function compareStreamOrder(a: string, b: string): number {
  const aHistory = parseHistoryFileName(a) !== undefined;
  const bHistory = parseHistoryFileName(b) !== undefined;
  if (aHistory !== bHistory) return aHistory ? -1 : 1;
  const key = (name: string) => (aHistory ? name : name.slice(8, 24) + name.slice(0, 8));
  return key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0;
}

/** Runs `command` with /bin/sh; resolves undefined on exit 0, else a short description of the failure. */
function runShell(command: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const child = spawn("/bin/sh", ["-c", command], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      if (stderr.length < 2000) stderr += chunk.toString();
    });
    child.on("error", (error) => resolve(error.message));
    child.on("close", (code, signal) => {
      if (code === 0) resolve(undefined);
      else {
        const detail = stderr.trim().split("\n").slice(-1)[0];
        resolve(
          `${signal ? `killed by signal ${signal}` : `exit code ${code}`}${detail ? `: ${detail}` : ""}`,
        );
      }
    });
  });
}
