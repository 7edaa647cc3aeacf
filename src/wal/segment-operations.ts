/**
 * Bookkeeping shared by the segment writers: operations on one open segment run one after the
 * other (a keepalive-triggered sync can never interleave with a write), a failed file refuses
 * further use until it is abandoned, and misuse (writing past the segment end, completing a
 * short segment) is reported without spoiling the file.
 */

import { StorageError } from "../errors.js";
import { isValidSegmentSize } from "../lsn.js";
import { storageCall } from "./fsync.js";

const WAL_FILE_NAME = /^[0-9A-F]{24}$/;

/** Validates openSegment's arguments (a programming error, not a storage failure). */
export function checkSegmentArguments(walFileName: string, segmentSize: number): void {
  if (!WAL_FILE_NAME.test(walFileName)) throw new RangeError(`invalid WAL file name "${walFileName}"`);
  if (!isValidSegmentSize(segmentSize)) throw new RangeError(`invalid WAL segment size ${segmentSize}`);
}

type SegmentState = "open" | "failed" | "closed";

export class SegmentOperations {
  private tail: Promise<unknown> = Promise.resolve();
  private state: SegmentState = "open";
  /** Errors for calls that were refused before touching the file: they leave it usable. */
  private readonly refusals = new WeakSet<object>();

  constructor(
    private readonly path: string,
    private readonly release: () => Promise<void>,
  ) {}

  /** Runs `operation` after every earlier one has settled. */
  run<T>(name: string, operation: () => Promise<T>): Promise<T> {
    const result = this.tail.then(async () => {
      if (this.state !== "open") {
        const reason = this.state === "closed" ? "the segment file is closed" : "an earlier operation failed";
        throw new StorageError(name, this.path, new Error(`cannot ${name}: ${reason}`));
      }
      try {
        return await operation();
      } catch (error) {
        if (this.state === "open" && !(typeof error === "object" && error && this.refusals.has(error))) {
          this.state = "failed";
        }
        throw error;
      }
    });
    this.tail = result.catch(() => {});
    return result;
  }

  /** A StorageError for a refused call; the file stays usable. */
  refuse(operation: string, message: string): StorageError {
    const error = new StorageError(operation, this.path, new Error(message));
    this.refusals.add(error);
    return error;
  }

  /** Throws (as a refusal) unless the chunks add up to totalLength and fit before the segment end. */
  checkWriteBounds(
    chunks: readonly Uint8Array[],
    totalLength: number,
    offset: number,
    segmentSize: number,
  ): void {
    let sum = 0;
    for (const chunk of chunks) sum += chunk.byteLength;
    if (sum !== totalLength) {
      throw this.refuse("write to", `chunks hold ${sum} bytes but totalLength is ${totalLength}`);
    }
    if (offset + totalLength > segmentSize) {
      throw this.refuse(
        "write to",
        `write of ${totalLength} bytes at offset ${offset} would pass the segment end (${segmentSize} bytes)`,
      );
    }
  }

  /** Releases the file (inside an operation, before a rename); later operations are refused. */
  async close(): Promise<void> {
    this.state = "closed";
    await storageCall("close", this.path, this.release);
  }

  /** Closes without syncing or renaming, after any running operation; never throws. */
  abandon(): Promise<void> {
    const result = this.tail.then(async () => {
      if (this.state === "closed") return;
      this.state = "closed";
      await this.release().catch(() => {});
    });
    this.tail = result;
    return result;
  }
}
