/**
 * Socket reads straight into one reused ring of memory (net's `onread` option): plaintext TCP and
 * Unix-socket reads land in it directly, and a TLS socket's decrypted records are copied into it
 * (see `tls-ring-reads.ts`).
 *
 * Why: with Node's default reads every 64 KiB chunk is a fresh allocation, an XLogData message
 * (≈128 KiB) straddles chunks and must be assembled by copying, and a fresh allocation per read
 * costs page faults and garbage collection. Here each read fills free space of a fixed ring as far
 * as the kernel has data, messages are handed on as views into it, and the memory is reused once
 * the consumer is done with them — so reading costs neither copies nor allocations, and its memory
 * is bounded by the ring: when the ring is full, the socket is paused.
 *
 * Bookkeeping: bytes are numbered by a running sequence (`seq`), and every read is a `RingChunk`.
 * The connection counts, per chunk, the message views still lent out; a chunk with none is done,
 * and the ring's space is given back in order up to the first chunk that is not.
 *
 * Node asks for the next read's buffer right after each read, even when that read pauses the
 * socket, and uses it whenever reading resumes. So a region handed out is reserved until its read
 * arrives, and when there is no room, a small spare buffer outside the ring is handed out instead.
 */
import { RingChunk } from "./read-ring-chunk.js";
import { SpareBuffers } from "./spare-buffers.js";

const DEFAULT_CAPACITY = 4 * 1024 * 1024;
/** Smallest read worth issuing from the ring; below this much contiguous space it waits or wraps. */
const MIN_READ_BYTES = 256 * 1024;
/** Largest single read, so one read cannot overshoot the queue's high-water mark by much. */
const MAX_READ_BYTES = 1024 * 1024;
/** Size of the stand-in buffer used while the ring is full. */
const OVERFLOW_READ_BYTES = 64 * 1024;

export class ReadRing {
  private readonly ring: Buffer;
  /** Stand-in reads while the ring is full, and messages the framer assembles, reuse these. */
  readonly spares = new SpareBuffers();
  /** End of the last read (including bytes skipped at the ring's end when wrapping). */
  private writeSeq = 0;
  /** Bytes given back: everything before this may be overwritten. */
  private releasedSeq = 0;
  /** Where the region handed to the pending read starts; undefined when it is outside the ring. */
  private pendingReadSeq: number | undefined;
  private readonly chunks: RingChunk[] = [];
  private sink: ((chunk: Buffer, owner: RingChunk) => void) | undefined;
  private early: [Buffer, RingChunk][] = [];
  /** Called when room is back after reads were held back. */
  private onRoom: (() => void) | undefined;
  /** The last read callback told Node to stop reading for want of room. */
  private readsHeld = false;

  constructor(readonly capacity: number = DEFAULT_CAPACITY) {
    this.ring = Buffer.allocUnsafe(capacity);
  }

  /** For net.connect({ onread }). Returning false from the callback pauses the socket. */
  readonly onread = {
    buffer: (): Buffer => this.nextReadBuffer(),
    callback: (bytes: number, buffer: Uint8Array): boolean => {
      const chunk = Buffer.from(buffer.buffer, buffer.byteOffset, bytes);
      let owner: RingChunk;
      if (buffer.buffer === this.ring.buffer && this.pendingReadSeq !== undefined) {
        this.writeSeq = this.pendingReadSeq + bytes;
        owner = new RingChunk(bytes, this.writeSeq);
        this.chunks.push(owner);
      } else {
        // A stand-in: nothing in the ring to give back; the spare is reused once this chunk is done.
        owner = this.spares.ownRead(buffer, bytes) ?? new RingChunk(bytes, -1);
      }
      this.pendingReadSeq = undefined;
      if (this.sink) this.sink(chunk, owner);
      else this.early.push([chunk, owner]);
      // false makes Node stop reading; only `onRoom` (via a resume) starts it again.
      this.readsHeld = !this.hasRoom;
      return !this.readsHeld;
    },
  };

  /** Where received bytes go (with the chunk that owns them); earlier bytes are delivered first. */
  setSink(sink: (chunk: Buffer, owner: RingChunk) => void): void {
    this.sink = sink;
    const early = this.early;
    this.early = [];
    for (const [chunk, owner] of early) sink(chunk, owner);
  }

  /** Received bytes are kept for the next sink (the SSLRequest answer is read before the connection exists). */
  detachSink(): void {
    this.sink = undefined;
  }

  /** Bytes a sink took but did not consume: the next sink gets them first. */
  giveBack(chunk: Buffer, owner: RingChunk): void {
    if (this.sink) this.sink(chunk, owner);
    else this.early.unshift([chunk, owner]);
  }

  /** A chunk nobody will hold a view of (the SSLRequest answer byte): its space can be reused. */
  discard(owner: RingChunk): void {
    owner.parsed = true;
    this.reclaim();
  }

  /** Registers the function that resumes reading once the ring has room again. */
  whenRoom(resume: () => void): void {
    this.onRoom = resume;
  }

  /** True when a worthwhile read fits, at the write position or after wrapping. */
  get hasRoom(): boolean {
    const { toEnd, free } = this.space();
    return (
      Math.min(toEnd, free) >= MIN_READ_BYTES || (toEnd < MIN_READ_BYTES && free - toEnd >= MIN_READ_BYTES)
    );
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
    // Only after a held read: a resume on every reclaim would cost a tick and a read restart per batch.
    if (released && this.readsHeld && this.hasRoom) {
      this.readsHeld = false;
      this.onRoom?.();
    }
  }

  private space(): { toEnd: number; free: number } {
    return {
      toEnd: this.capacity - (this.writeSeq % this.capacity),
      free: this.capacity - (this.writeSeq - this.releasedSeq),
    };
  }

  /** Reserves the region for the next read; wraps to the ring's start when its end is too short. */
  private nextReadBuffer(): Buffer {
    const { toEnd, free } = this.space();
    let length = Math.min(toEnd, free);
    if (length < MIN_READ_BYTES && toEnd < MIN_READ_BYTES && free - toEnd >= MIN_READ_BYTES) {
      // Skip the short tail: it is given back together with the chunk before it.
      this.writeSeq += toEnd;
      const last = this.chunks[this.chunks.length - 1];
      if (last !== undefined) last.endSeq = this.writeSeq;
      else this.releasedSeq = this.writeSeq;
      length = free - toEnd;
    }
    if (length < MIN_READ_BYTES) {
      this.pendingReadSeq = undefined;
      return this.spares.takeForRead(OVERFLOW_READ_BYTES);
    }
    this.pendingReadSeq = this.writeSeq;
    const position = this.writeSeq % this.capacity;
    return this.ring.subarray(position, position + Math.min(length, MAX_READ_BYTES));
  }
}
