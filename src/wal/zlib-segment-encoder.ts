/**
 * The SegmentEncoder of every zlib-module compressor (gzip, zstd): drives the stream in paused
 * mode, pulling output with read() whenever the stream has some and once more after each
 * write/flush callback, so that a resolved promise means "all output for that input has been
 * emitted" (zlib pushes its output before it calls the write callback).
 */
import { once } from "node:events";
import type { Transform } from "node:stream";
import type { SegmentEncoder } from "./compressed-storage.js";

/** A zlib-module stream: gzip and zstd streams both have flush(kind, callback). */
export type ZlibCompressStream = Transform & { flush(kind: number, callback: () => void): void };

export class ZlibSegmentEncoder implements SegmentEncoder {
  readonly header = undefined;
  private failure: Error | undefined;

  /** `syncFlushKind`: the flush that ends a decodable block (Z_SYNC_FLUSH, ZSTD_e_flush). */
  constructor(
    private readonly stream: ZlibCompressStream,
    private readonly syncFlushKind: number,
    private readonly emit: (output: Uint8Array) => void,
  ) {
    stream.on("readable", () => this.pull());
    stream.on("error", (error) => {
      this.failure = error;
    });
  }

  private pull(): void {
    for (let chunk: Buffer | null = this.stream.read(); chunk !== null; chunk = this.stream.read())
      this.emit(chunk);
  }

  private check(): void {
    if (this.failure) throw this.failure;
  }

  async write(chunks: readonly Uint8Array[]): Promise<void> {
    this.check();
    // Waiting for every chunk's callback means the compressor has consumed it (the caller may
    // reuse it), and keeps at most one call's input queued inside zlib (backpressure).
    await Promise.all(
      chunks
        .filter((chunk) => chunk.byteLength > 0)
        .map(
          (chunk) =>
            new Promise<void>((resolve, reject) => {
              this.stream.write(chunk, (error) => (error ? reject(error) : resolve()));
            }),
        ),
    );
    this.pull();
    this.check();
  }

  async flush(): Promise<void> {
    this.check();
    await new Promise<void>((resolve) => this.stream.flush(this.syncFlushKind, () => resolve()));
    this.pull();
    this.check();
  }

  async finish(): Promise<void> {
    this.check();
    const ended = once(this.stream, "end");
    this.stream.end();
    this.pull();
    await ended;
    this.pull();
    this.check();
  }

  destroy(): void {
    this.stream.destroy();
  }
}
