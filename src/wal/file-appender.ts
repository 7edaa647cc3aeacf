/**
 * Ordered, positional appends of compressor output to one file. Compressors hand over output
 * whenever they produce it (synchronously or from zlib's thread pool); this writer keeps it in
 * order, writes it with positional writev batches, and lets the segment writer wait for all of
 * it (`drain`) before an fsync, or when too much is queued (bounded memory on a slow disk).
 */
import { StorageError } from "../errors.js";
import { type WalFileHandle, writeAllAt } from "./fsync.js";

/** Above this many queued bytes, writers should await `drain()` before taking more input. */
export const APPENDER_HIGH_WATER_MARK = 8 * 1024 * 1024;

export class FileAppender {
  private queue: Uint8Array[] = [];
  private queuedBytes = 0;
  private position: number;
  private running: Promise<void> | undefined;
  private failure: StorageError | undefined;

  constructor(
    private readonly handle: WalFileHandle,
    private readonly path: string,
    startPosition = 0,
  ) {
    this.position = startPosition;
  }

  /** Bytes handed over but not yet written to the file. */
  get pendingBytes(): number {
    return this.queuedBytes;
  }

  /** File size once everything queued is written. */
  get endPosition(): number {
    return this.position + this.queuedBytes;
  }

  /** The first write failure, if any (later output is then dropped; `drain` rejects with it). */
  get error(): StorageError | undefined {
    return this.failure;
  }

  /**
   * Queues `data` (it must not be modified afterwards). Never throws, so that it can be called
   * from a compressor's event handler: failures surface through `error` and `drain`.
   */
  append(data: Uint8Array): void {
    if (this.failure || data.byteLength === 0) return;
    this.queue.push(data);
    this.queuedBytes += data.byteLength;
    if (!this.running) this.running = this.writeQueued();
  }

  /** Resolves once everything queued so far is written; rejects with the first write failure. */
  async drain(): Promise<void> {
    while (this.running) await this.running;
    if (this.failure) throw this.failure;
  }

  private async writeQueued(): Promise<void> {
    try {
      while (this.queue.length > 0 && !this.failure) {
        const batch = this.queue;
        let batchBytes = 0;
        for (const chunk of batch) batchBytes += chunk.byteLength;
        this.queue = [];
        try {
          await writeAllAt(this.handle, batch, this.position);
        } catch (error) {
          this.failure =
            error instanceof StorageError ? error : new StorageError("write to", this.path, error);
          return;
        }
        this.position += batchBytes;
        this.queuedBytes -= batchBytes;
      }
    } finally {
      this.running = undefined;
    }
  }
}
