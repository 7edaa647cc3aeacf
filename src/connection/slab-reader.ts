/**
 * Socket reads straight into large slabs (net's `onread` option), for plaintext connections.
 *
 * Each read fills the free tail of a 4 MiB slab, and the bytes are handed on as a view of it. Two
 * things follow: reads are as large as the kernel has data for (not Node's default 64 KiB), so
 * there are far fewer read calls and 'data' events; and an XLogData message (≈128 KiB) almost
 * always lies inside one read, so the framer hands it on as a view instead of assembling a copy.
 * A slab is never written twice: views stay valid, and a slab is garbage once no view points at it.
 */
const SLAB_BYTES = 4 * 1024 * 1024;
/** Below this much free space a new slab is started, so reads stay large. */
const MIN_READ_BYTES = 256 * 1024;

export class SlabReader {
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private used = 0;
  private sink: ((chunk: Buffer) => void) | undefined;
  private early: Buffer[] = [];

  /** For net.connect({ onread }). */
  readonly onread = {
    buffer: (): Buffer => {
      if (SLAB_BYTES - this.used < MIN_READ_BYTES) {
        this.slab = Buffer.allocUnsafe(SLAB_BYTES);
        this.used = 0;
      }
      return this.slab.subarray(this.used);
    },
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
      this.used += bytes;
      if (this.sink) this.sink(chunk);
      else this.early.push(chunk);
      return true;
    },
  };

  /** Where received bytes go; bytes that arrived before it was set are delivered first. */
  setSink(sink: (chunk: Buffer) => void): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const chunk of early) sink(chunk);
  }
}
