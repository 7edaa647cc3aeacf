/**
 * Copies the local archive into an object store, off the streaming path: every complete segment and
 * history file once (write-once, see S3ObjectStore.putComplete), several at a time, and the
 * `.partial` being written every partial interval (replaced in place), so the bucket reaches the
 * newest streamed WAL. Uploads are acknowledged in stream order: the "held" position is the end of
 * WAL that is wholly in the bucket (every earlier file confirmed; the `.partial` counts up to the
 * flush position it was taken at). Failures that time can fix are retried with backoff; the others
 * (bad keys, missing bucket, denial, a different object under our name) stop the uploader with
 * their typed error. Confirmed names are kept in a small state file outside the archive, written
 * durably, so a restart re-uploads exactly the files that were not confirmed.
 */
import { EventEmitter } from "node:events";
import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { StorageError } from "../errors.js";
import { compareStreamOrder } from "../hooks/segment-hooks.js";
import { formatLsn, type Lsn, parseLsn, segmentNumberOf, segmentOffsetOf, segmentStartLsn } from "../lsn.js";
import { Backoff } from "../receiver/backoff.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import { perArchiveStateFile, writeStateFileDurably } from "../state-files.js";
import {
  PARTIAL_SUFFIX,
  parseArchiveFileName,
  parseHistoryFileName,
  parseWalFileName,
  walFileName,
} from "../wal/names.js";
import { checkBucketCluster } from "./bucket-identity.js";
import type { S3ObjectStore } from "./object-store.js";
import { ObjectStoreError } from "./store-errors.js";

export interface WalUploaderOptions {
  store: S3ObjectStore;
  directory: string;
  /** Where confirmed uploads are recorded (default: see defaultUploadStateFile). */
  stateFile: string;
  /** ".gz", ".lz4", ".zst" or "": the archive's compression suffix, to find the `.partial`. */
  archiveSuffix: "" | ".gz" | ".lz4" | ".zst";
  logger: ReceiverLogger;
  /** Uploads running at the same time (at least 1). */
  concurrency: number;
  /** Milliseconds between uploads of the `.partial`; 0 = never. */
  partialIntervalMs: number;
  retryDelayMs?: { initial: number; max: number };
}

export interface UploaderEvents {
  uploaded: [{ fileName: string; bytes: number; outcome: "created" | "already-identical" | "partial" }];
  failed: [{ fileName: string; error: Error; attempt: number; retryInMs: number }];
  /** A failure no retry can fix; the uploader has stopped. */
  fatal: [Error];
}

interface PendingUpload {
  fileName: string;
  /** End LSN of a segment; undefined for history files (and until the segment size is known). */
  endLsn: Lsn | undefined;
  bytes: number;
  state: "waiting" | "uploading" | "done";
  backoff: Backoff;
  /** Date.now() before which a failed upload is not tried again. */
  notBefore: number;
}

interface UploadState {
  /** Files confirmed in the bucket that may still be in the archive. */
  done: string[];
  /** End of WAL wholly in the bucket when this was written (for --upload-holds-slot after a restart). */
  heldUpTo?: string;
}

/** Where upload progress is kept: systemd's $STATE_DIRECTORY, else $XDG_STATE_HOME or ~/.local/state; per archive and target. */
export function defaultUploadStateFile(
  directory: string,
  targetUrl: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  return perArchiveStateFile("uploads", directory, env, targetUrl);
}

export class WalUploader extends EventEmitter<UploaderEvents> {
  private readonly queue: PendingUpload[] = [];
  private readonly done = new Set<string>();
  /** End of the complete files confirmed in order. */
  private completeUpTo: Lsn = 0n;
  /** Flush position covered by the newest uploaded `.partial`, and that segment's start. */
  private partialUpTo: { lsn: Lsn; segmentStart: Lsn } | undefined;
  private segmentSize = 0;
  private started = false;
  /** Progress loaded and the archive scanned: uploads may begin. */
  private ready = false;
  private stopping = false;
  private lastSuccessAt = 0;
  private flushed: { lsn: Lsn; timeline: number } | undefined;
  private partialUploadedAt: Lsn = 0n;
  /** `.partial` objects in the bucket whose segment may not be confirmed yet. */
  private readonly partialObjects = new Set<string>();
  private readonly inFlight = new Set<Promise<void>>();
  private partialRun: Promise<void> | undefined;
  private partialTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> = Promise.resolve();
  private readonly abort = new AbortController();

  constructor(private readonly options: WalUploaderOptions) {
    super();
  }

  /**
   * The flush position the server may be told with --upload-holds-slot: the end of WAL that is wholly
   * in the bucket (0 until something is).
   */
  get holdPosition(): Lsn {
    const partial = this.partialUpTo;
    if (partial !== undefined && partial.segmentStart <= this.completeUpTo && partial.lsn > this.completeUpTo)
      return partial.lsn;
    return this.completeUpTo;
  }

  get stats(): { pendingFiles: number; pendingBytes: number; lastSuccessAt: number } {
    let pendingBytes = 0;
    let pendingFiles = 0;
    for (const entry of this.queue) {
      if (entry.state === "done") continue;
      pendingFiles++;
      pendingBytes += entry.bytes;
    }
    return { pendingFiles, pendingBytes, lastSuccessAt: this.lastSuccessAt };
  }

  /**
   * Loads progress, queues every complete file of the archive not confirmed yet, and starts
   * uploading. Called once the server has told us its segment size (to turn names into LSNs).
   */
  async start(segmentSize: number, systemId?: bigint): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.segmentSize = segmentSize;
    if (systemId !== undefined) await this.checkCluster(systemId);
    if (this.stopping) return;
    const state = await this.loadState();
    for (const name of state.done) this.done.add(name);
    if (state.heldUpTo !== undefined) this.completeUpTo = parseLsn(state.heldUpTo);
    const queued = new Set(this.queue.map((entry) => entry.fileName));
    const found = (await readdir(this.options.directory))
      .filter((name) => isUploadable(name) && !this.done.has(name) && !queued.has(name))
      .sort(compareStreamOrder);
    // Files already on disk were completed before any this run reported: they go first.
    const sized = await Promise.all(found.map((name) => this.newEntry(name)));
    // A file the receiver reported while the sizes were read is queued already, in stream order.
    const queuedNow = new Set(this.queue.map((entry) => entry.fileName));
    const earlier = sized.filter((entry) => !queuedNow.has(entry.fileName));
    this.queue.unshift(...earlier);
    for (const entry of this.queue) entry.endLsn ??= this.segmentEnd(entry.fileName);
    if (earlier.length > 0) {
      this.options.logger.info(
        { pending: earlier.length, target: this.options.store.url },
        `${earlier.length} archived file(s) still to upload to ${this.options.store.url}`,
      );
    }
    if (this.options.partialIntervalMs > 0) {
      this.partialTimer = setInterval(() => this.uploadPartialSoon(), this.options.partialIntervalMs);
      this.partialTimer.unref();
    }
    this.ready = true;
    this.pump();
  }

  /** Refuses a bucket prefix that holds another cluster's WAL; waits out outages of the store. */
  private async checkCluster(systemId: bigint): Promise<void> {
    const backoff = this.newBackoff();
    for (;;) {
      try {
        await checkBucketCluster(this.options.store, systemId);
        return;
      } catch (error) {
        if ((error as { retryable?: unknown }).retryable !== true || this.stopping) throw error;
        const delay = backoff.next();
        this.options.logger.warn(
          { target: this.options.store.url, retryInMs: delay },
          `could not check ${this.options.store.url}: ${(error as Error).message}; retrying in ${(delay / 1000).toFixed(1)} s`,
        );
        await new Promise((resolve) => setTimeout(resolve, delay).unref());
      }
    }
  }

  /** A segment or history file has been made durable under its final name. */
  enqueue(fileName: string): void {
    if (this.stopping || this.done.has(fileName) || this.queue.some((entry) => entry.fileName === fileName))
      return;
    const entry: PendingUpload = {
      fileName,
      endLsn: this.segmentSize > 0 ? this.segmentEnd(fileName) : undefined,
      bytes: 0,
      state: "waiting",
      backoff: this.newBackoff(),
      notBefore: 0,
    };
    this.queue.push(entry);
    // The size is for the pending-bytes metric only.
    stat(path.join(this.options.directory, fileName)).then(
      (s) => {
        entry.bytes = s.size;
      },
      () => undefined,
    );
    if (this.ready) this.pump();
  }

  /** WAL up to `lsn` on `timeline` is durable in the archive (the `.partial` may be uploaded that far). */
  noteFlushed(lsn: Lsn, timeline: number): void {
    this.flushed = { lsn, timeline };
  }

  /**
   * No new uploads; waits for those running (at most `graceMs`, then aborts them: they stay
   * unconfirmed and are redone after a restart), and records progress.
   */
  async stop(graceMs = 10_000): Promise<void> {
    this.stopping = true;
    clearInterval(this.partialTimer);
    clearTimeout(this.retryTimer);
    const running = Promise.all([...this.inFlight, this.partialRun]);
    const timer = setTimeout(() => this.abort.abort(), graceMs);
    await running;
    clearTimeout(timer);
    await this.saving;
  }

  /** Releases the store's connections (after stop()). */
  destroy(): void {
    this.options.store.destroy();
  }

  private newBackoff(): Backoff {
    const { initial, max } = this.options.retryDelayMs ?? { initial: 1000, max: 60_000 };
    return new Backoff(initial, max);
  }

  private async newEntry(fileName: string): Promise<PendingUpload> {
    const size = await stat(path.join(this.options.directory, fileName)).then(
      (s) => s.size,
      () => 0,
    );
    return {
      fileName,
      endLsn: this.segmentEnd(fileName),
      bytes: size,
      state: "waiting",
      backoff: this.newBackoff(),
      notBefore: 0,
    };
  }

  private segmentEnd(name: string): Lsn | undefined {
    const parsed = parseArchiveFileName(name);
    if (!parsed || parsed.partial) return undefined;
    const wal = parseWalFileName(parsed.walFileName, this.segmentSize);
    return wal ? (wal.segNo + 1n) * BigInt(this.segmentSize) : undefined;
  }

  /** Starts waiting uploads up to the concurrency limit, oldest first. */
  private pump(): void {
    if (this.stopping) return;
    const now = Date.now();
    let running = this.queue.filter((entry) => entry.state === "uploading").length;
    let nextRetry = Number.POSITIVE_INFINITY;
    for (const entry of this.queue) {
      if (running >= Math.max(1, this.options.concurrency)) break;
      if (entry.state !== "waiting") continue;
      if (entry.notBefore > now) {
        nextRetry = Math.min(nextRetry, entry.notBefore);
        continue;
      }
      running++;
      entry.state = "uploading";
      const upload = this.upload(entry);
      this.inFlight.add(upload);
      void upload.finally(() => {
        this.inFlight.delete(upload);
        this.pump();
      });
    }
    clearTimeout(this.retryTimer);
    if (nextRetry !== Number.POSITIVE_INFINITY) {
      this.retryTimer = setTimeout(() => this.pump(), Math.max(0, nextRetry - Date.now()));
      this.retryTimer.unref();
    }
  }

  private async upload(entry: PendingUpload): Promise<void> {
    const filePath = path.join(this.options.directory, entry.fileName);
    try {
      const size = (await stat(filePath)).size;
      entry.bytes = size;
      const outcome = await this.options.store.putComplete(entry.fileName, filePath, size, {
        signal: this.abort.signal,
      });
      entry.state = "done";
      entry.backoff.reset();
      this.lastSuccessAt = Date.now();
      // The store answers again: files waiting out an outage's backoff go now, not in up to a minute.
      for (const other of this.queue) {
        if (other.state !== "waiting" || other.notBefore === 0) continue;
        other.notBefore = 0;
        other.backoff.reset();
      }
      this.options.logger.info(
        { file: entry.fileName, bytes: size, outcome, target: this.options.store.url },
        outcome === "created"
          ? `uploaded "${entry.fileName}" to ${this.options.store.url}`
          : `"${entry.fileName}" already in ${this.options.store.url} with the same bytes`,
      );
      this.emit("uploaded", { fileName: entry.fileName, bytes: size, outcome });
      this.acknowledgeInOrder();
    } catch (error) {
      entry.state = "waiting";
      if (this.stopping) return;
      const typed = error instanceof Error ? error : new Error(String(error));
      if ((error as { retryable?: unknown }).retryable === false) {
        this.fail(typed);
        return;
      }
      if ((error as NodeJS.ErrnoException).code === "ENOENT") {
        // Removed from the archive before it left the machine: the bucket would have a gap.
        this.fail(
          new ObjectStoreError(
            `"${entry.fileName}" disappeared from the archive before it was uploaded to ${this.options.store.url}`,
            false,
            { cause: error },
          ),
        );
        return;
      }
      const delay = entry.backoff.next();
      entry.notBefore = Date.now() + delay;
      this.options.logger.warn(
        { file: entry.fileName, attempt: entry.backoff.attempts, retryInMs: delay },
        `upload of "${entry.fileName}" failed: ${typed.message}; retrying in ${(delay / 1000).toFixed(1)} s`,
      );
      this.emit("failed", {
        fileName: entry.fileName,
        error: typed,
        attempt: entry.backoff.attempts,
        retryInMs: delay,
      });
    }
  }

  /** Confirms the leading run of finished uploads, so the held position only ever covers a gap-free prefix. */
  private acknowledgeInOrder(): void {
    let advanced = false;
    while (this.queue[0]?.state === "done") {
      const entry = this.queue.shift()!;
      this.done.add(entry.fileName);
      if (entry.endLsn !== undefined && entry.endLsn > this.completeUpTo) this.completeUpTo = entry.endLsn;
      // Its .partial may be in the bucket from before a restart too: the complete object supersedes it.
      if (entry.endLsn !== undefined && this.options.partialIntervalMs > 0)
        this.partialObjects.add(entry.fileName + PARTIAL_SUFFIX);
      advanced = true;
    }
    if (!advanced) return;
    this.save();
    this.retirePartials();
  }

  /** Records progress, one write at a time. */
  private save(): void {
    this.saving = this.saving
      .then(() => this.saveState())
      .catch((error: unknown) =>
        // The uploads happened; losing the record only means they are compared again after a restart.
        this.options.logger.warn({}, `could not record upload progress: ${String(error)}`),
      );
  }

  private fail(error: Error): void {
    if (this.stopping) return;
    this.stopping = true;
    clearInterval(this.partialTimer);
    clearTimeout(this.retryTimer);
    this.emit("fatal", error);
  }

  private uploadPartialSoon(): void {
    if (this.partialRun !== undefined || this.stopping) return;
    this.partialRun = this.uploadPartial().finally(() => {
      this.partialRun = undefined;
    });
  }

  /** Uploads the `.partial` up to the flush position, if that moved since the last time. */
  private async uploadPartial(): Promise<void> {
    const flushed = this.flushed;
    if (flushed === undefined || flushed.lsn <= this.partialUploadedAt || this.segmentSize === 0) return;
    const offset = segmentOffsetOf(flushed.lsn, this.segmentSize);
    // At a segment boundary the segment is complete: it is uploaded as such.
    if (offset === 0) return;
    const segNo = segmentNumberOf(flushed.lsn, this.segmentSize);
    const fileName = `${walFileName(flushed.timeline, segNo, this.segmentSize)}${this.options.archiveSuffix}${PARTIAL_SUFFIX}`;
    const filePath = path.join(this.options.directory, fileName);
    try {
      // Uncompressed: the bytes up to the flush position (restore pads a .partial with zeros).
      // Compressed: the whole file, which decodes at least that far once flushed.
      const size = this.options.archiveSuffix === "" ? offset : (await stat(filePath)).size;
      await this.options.store.putReplace(fileName, filePath, size, { signal: this.abort.signal });
      this.partialObjects.add(fileName);
      this.partialUploadedAt = flushed.lsn;
      this.partialUpTo = { lsn: flushed.lsn, segmentStart: segmentStartLsn(segNo, this.segmentSize) };
      this.lastSuccessAt = Date.now();
      this.options.logger.debug(
        { file: fileName, bytes: size, lsn: formatLsn(flushed.lsn) },
        `uploaded "${fileName}" up to ${formatLsn(flushed.lsn)}`,
      );
      this.emit("uploaded", { fileName, bytes: size, outcome: "partial" });
      this.retirePartials();
    } catch (error) {
      if (this.stopping) return;
      // The segment was completed (renamed) meanwhile: its complete upload takes over.
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return;
      if ((error as { retryable?: unknown }).retryable === false) {
        this.fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      this.options.logger.warn(
        { file: fileName },
        `upload of "${fileName}" failed: ${error instanceof Error ? error.message : String(error)}; trying again at the next partial interval`,
      );
      this.emit("failed", {
        fileName,
        error: error instanceof Error ? error : new Error(String(error)),
        attempt: 1,
        retryInMs: this.options.partialIntervalMs,
      });
    }
  }

  /** Deletes `.partial` objects whose complete segment is confirmed (never one being uploaded). */
  private retirePartials(): void {
    for (const name of this.partialObjects) {
      const complete = name.slice(0, -PARTIAL_SUFFIX.length);
      if (!this.done.has(complete)) continue;
      this.partialObjects.delete(name);
      this.options.store
        .delete(name)
        .catch((error: unknown) =>
          this.options.logger.warn(
            { file: name },
            `could not delete the superseded "${name}": ${error instanceof Error ? error.message : String(error)}`,
          ),
        );
    }
  }

  private async loadState(): Promise<UploadState> {
    try {
      const parsed = JSON.parse(await readFile(this.options.stateFile, "utf8")) as Partial<UploadState>;
      const heldUpTo = typeof parsed.heldUpTo === "string" ? parsed.heldUpTo : undefined;
      return { done: Array.isArray(parsed.done) ? parsed.done.map(String) : [], heldUpTo };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return { done: [] };
      throw new StorageError("read", this.options.stateFile, error);
    }
  }

  /** Durable write (temp file, fsync, rename) so a crash never loses or corrupts progress. */
  private async saveState(): Promise<void> {
    const file = this.options.stateFile;
    // Only names still in the archive matter; the state stays small as old segments are removed.
    const present = new Set(await readdir(this.options.directory));
    for (const name of this.done) if (!present.has(name)) this.done.delete(name);
    const state: UploadState = {
      done: [...this.done],
      heldUpTo: this.completeUpTo > 0n ? formatLsn(this.completeUpTo) : undefined,
    };
    await writeStateFileDurably(file, JSON.stringify(state));
  }
}

/** Complete segments and history files; `.partial` files are uploaded by the partial timer. */
function isUploadable(name: string): boolean {
  if (parseHistoryFileName(name) !== undefined) return true;
  const parsed = parseArchiveFileName(name);
  return parsed !== undefined && !parsed.partial;
}
