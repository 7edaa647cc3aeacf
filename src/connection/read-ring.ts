/**
 * Socket reads straight into one reused ring of memory (net's `onread` option), for plaintext
 * connections.
 *
 * Why: with Node's default reads every 64 KiB chunk is a fresh allocation, an XLogData message
 * (≈128 KiB) straddles chunks and must be assembled by copying, and a fresh allocation per read
 * costs page faults and garbage collection. Here each read fills the free part of a fixed ring
 * as far as the kernel has data, messages are handed on as views into it, and the memory is
 * reused once the consumer is done with them — so reading costs neither copies nor allocations,
 * and its memory is bounded by the ring: when the ring is full, the socket is paused.
 *
 * Bookkeeping: bytes are numbered by a running sequence (`seq`), and every read is a `RingChunk`.
 * The connection counts, per chunk, the message views still lent out; a chunk with none is done,
 * and the ring's space is given back in order up to the first chunk that is not.
 */
const DEFAULT_CAPACITY = 8 * 1024 * 1024;
/** Smallest read worth issuing; below this much contiguous space the ring waits or wraps. */
const MIN_READ_BYTES = 256 * 1024;
/** Largest single read, so one read cannot overshoot the queue's high-water mark by much. */
const MAX_READ_BYTES = 1024 * 1024;

export class RingChunk {
  /** Message views of this chunk still held by a consumer. */
  outstanding = 0;
  /** The framer has finished with the chunk (only views can still pin it). */
  parsed = false;
  constructor(
    /** Bytes of data the read delivered. */
    readonly bytes: number,
    /** Sequence number after the chunk; grows when the ring wraps and the skipped tail is added to it. */
    public endSeq: number,
  ) {}
}

export class ReadRing {
  private readonly ring: Buffer;
  /** Bytes ever handed to reads (including bytes skipped at the ring's end when wrapping). */
  private writeSeq = 0;
  /** Bytes given back: everything before this may be overwritten. */
  private releasedSeq = 0;
  private readonly chunks: RingChunk[] = [];
  private sink: ((chunk: Buffer, owner: RingChunk) => void) | undefined;
  private early: [Buffer, RingChunk][] = [];
  /** Set while reads are held back for lack of room; called when room is back. */
  private onRoom: (() => void) | undefined;

  constructor(readonly capacity: number = DEFAULT_CAPACITY) {
    this.ring = Buffer.allocUnsafe(capacity);
  }

  /** For net.connect({ onread }). Returning false from the callback pauses the socket. */
  readonly onread = {
    buffer: (): Buffer => {
      const room = this.contiguousRoom();
      // The callback paused reading before room ran out; should Node still ask, give a sliver.
      const position = this.writeSeq % this.capacity;
      return this.ring.subarray(position, position + Math.min(Math.max(room, 1), MAX_READ_BYTES));
    },
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
      this.writeSeq += bytes;
      const owner = new RingChunk(bytes, this.writeSeq);
      this.chunks.push(owner);
      if (this.sink) this.sink(chunk, owner);
      else this.early.push([chunk, owner]);
      return this.contiguousRoom() >= MIN_READ_BYTES;
    },
  };

  /** Where received bytes go (with the chunk that owns them); earlier bytes are delivered first. */
  setSink(sink: (chunk: Buffer, owner: RingChunk) => void): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const [chunk, owner] of early) sink(chunk, owner);
  }

  /** Registers the function that resumes reading once the ring has room again. */
  whenRoom(resume: () => void): void {
    this.onRoom = resume;
  }

  get hasRoom(): boolean {
    return this.contiguousRoom() >= MIN_READ_BYTES;
  }

  /** Bytes of the ring currently holding data not yet given back. */
  get usedBytes(): number {
    return this.writeSeq - this.releasedSeq;
  }

  /** Gives back every leading chunk that is parsed and has no view lent out. */
  reclaim(): void {
    let released = false;
    while (this.chunks.length > 0) {
      const first = this.chunks[0]!;
      if (!first.parsed || first.outstanding > 0) break;
      this.chunks.shift();
      this.releasedSeq = first.endSeq;
      released = true;
    }
    if (this.chunks.length === 0) {
      // Nothing is lent out: every byte up to the last read (and any skipped tail) is free.
      this.releasedSeq = this.writeSeq;
    }
    if (released && this.onRoom && this.hasRoom) this.onRoom();
  }

  /**
   * Contiguous free bytes at the write position. When the space left before the ring's end is
   * too small for a worthwhile read, the write position skips to the start (the skipped bytes
   * count as handed out, so they are given back with the chunk before them).
   */
  private contiguousRoom(): number {
    const free = this.capacity - (this.writeSeq - this.releasedSeq);
    const position = this.writeSeq % this.capacity;
    const toEnd = this.capacity - position;
    if (toEnd < MIN_READ_BYTES && free - toEnd >= MIN_READ_BYTES) {
      this.writeSeq += toEnd;
      const last = this.chunks[this.chunks.length - 1];
      if (last !== undefined) {
        last.endSeq = this.writeSeq; // the last chunk now also covers the skipped tail
      } else {
        this.releasedSeq = this.writeSeq;
      }
      return Math.min(this.capacity, this.capacity - (this.writeSeq - this.releasedSeq));
    }
    return Math.min(free, toEnd);
  }
}
