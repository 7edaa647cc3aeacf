/**
 * lz4 segments (`-Z lz4`): one LZ4 frame per segment file, readable by `lz4 -d`. Blocks are
 * independent and at most 4 MiB; `sync` ends the current block early (like LZ4F_flush) so that
 * the file decodes up to the last synced byte.
 *
 * The compression level is accepted for compatibility but this encoder has a single (fast)
 * mode: pg_receivewal's levels 1-12 select LZ4's high-compression variants, not implemented here.
 */
import { CompressedWalStorage, type SegmentEncoder } from "./compressed-storage.js";
import { Lz4FrameEncoder } from "./lz4-frame.js";
import type { ResolvedStorageOptions, WalStorage } from "./storage.js";

export class Lz4SegmentEncoder implements SegmentEncoder {
  private readonly frame = new Lz4FrameEncoder({ blockSizeId: 7, contentChecksum: true });
  readonly header: Uint8Array;

  constructor(private readonly emit: (output: Uint8Array) => void) {
    this.header = this.frame.header();
  }

  private emitAll(blocks: Buffer[]): void {
    for (const block of blocks) this.emit(block);
  }

  async write(chunks: readonly Uint8Array[]): Promise<void> {
    // The frame encoder copies input into its block buffer: chunks are free once this returns.
    for (const chunk of chunks) this.emitAll(this.frame.update(chunk));
  }

  async flush(): Promise<void> {
    this.emitAll(this.frame.flush());
  }

  async finish(): Promise<void> {
    this.emitAll(this.frame.end());
  }

  destroy(): void {}
}

export function createLz4WalStorage(options: ResolvedStorageOptions, _level: number | undefined): WalStorage {
  return new CompressedWalStorage(options, "lz4", (emit) => new Lz4SegmentEncoder(emit));
}
