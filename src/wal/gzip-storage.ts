/**
 * gzip segments (`-Z gzip[:N]`): one zlib gzip stream per segment file, so that `gunzip` reads it
 * and its ISIZE trailer tells the uncompressed size (what the archive scan checks).
 */
import { once } from "node:events";
import { createGzip, type Gzip, constants as zlibConstants } from "node:zlib";
import { CompressedWalStorage, type SegmentEncoder } from "./compressed-storage.js";
import type { ResolvedStorageOptions, WalStorage } from "./storage.js";

/**
 * Drives a zlib Gzip stream in paused mode: output is pulled with read() whenever zlib has some,
 * and once more after each write/flush callback, so that a resolved promise means "all output for
 * that input has been emitted" (zlib pushes its output before it calls the write callback).
 */
export class GzipSegmentEncoder implements SegmentEncoder {
  readonly header = undefined;
  private readonly gzip: Gzip;
  private failure: Error | undefined;

  constructor(
    level: number | undefined,
    private readonly emit: (output: Uint8Array) => void,
  ) {
    this.gzip = createGzip({ level: level ?? zlibConstants.Z_DEFAULT_COMPRESSION });
    this.gzip.on("readable", () => this.pull());
    this.gzip.on("error", (error) => {
      this.failure = error;
    });
  }

  private pull(): void {
    for (let chunk: Buffer | null = this.gzip.read(); chunk !== null; chunk = this.gzip.read())
      this.emit(chunk);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  async write(chunks: readonly Uint8Array[]): Promise<void> {
    this.check();
    // Waiting for every chunk's callback means zlib has consumed it (the caller may reuse it),
    // and keeps at most one call's input queued inside zlib (backpressure).
    await Promise.all(
      chunks
        .filter((chunk) => chunk.byteLength > 0)
        .map(
          (chunk) =>
            new Promise<void>((resolve, reject) => {
              this.gzip.write(chunk, (error) => (error ? reject(error) : resolve()));
            }),
        ),
    );
    this.pull();
    this.check();
  }

  async flush(): Promise<void> {
    this.check();
    await new Promise<void>((resolve) => this.gzip.flush(zlibConstants.Z_SYNC_FLUSH, () => resolve()));
    this.pull();
    this.check();
  }

  async finish(): Promise<void> {
    this.check();
    const ended = once(this.gzip, "end");
    this.gzip.end();
    this.pull();
    await ended;
    this.pull();
    this.check();
  }

  destroy(): void {
    this.gzip.destroy();
  }
}

export function createGzipWalStorage(options: ResolvedStorageOptions, level: number | undefined): WalStorage {
  return new CompressedWalStorage(options, "gzip", (emit) => new GzipSegmentEncoder(level, emit));
}
