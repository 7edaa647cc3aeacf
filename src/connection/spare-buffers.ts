import { RingChunk } from "./read-ring-chunk.js";

/**
 * Buffers outside the read ring, reused once nothing references them: the stand-in a read gets
 * while the ring is full, and the body of a message the framer had to assemble (one that straddles
 * the ring's wrap point or a stand-in).
 *
 * Why: each of these used to be a fresh allocation that became garbage as soon as its WAL was
 * written. V8 collects external memory late, so a 1 GiB catch-up carried tens of MiB of dead
 * buffers in its resident set. A buffer here is busy from `take` until its owner chunk is parsed
 * and no view of it is lent out — the same rule that frees ring space.
 */
interface Spare {
  readonly memory: Buffer;
  /** Whoever uses the buffer now or last; the spare is free again once this chunk is finished. */
  owner: RingChunk | undefined;
  /** Taken for a read that has not arrived yet (its owner is created when it does). */
  awaitingRead: boolean;
}

/** Every spare is at least this big, so it never comes from Node's shared small-buffer pool. */
const MIN_SPARE_BYTES = 64 * 1024;
/** Larger messages are rare (never WAL): they are not worth keeping memory for. */
const MAX_SPARE_BYTES = 1024 * 1024;
/** Memory kept for reuse; beyond it (a burst of stand-ins) buffers are allocated and dropped. */
const DEFAULT_POOL_BYTES = 4 * 1024 * 1024;

export class SpareBuffers {
  private readonly spares: Spare[] = [];
  private readonly byMemory = new Map<ArrayBufferLike, Spare>();
  private pooledBytes = 0;

  constructor(private readonly poolBytes: number = DEFAULT_POOL_BYTES) {}

  /** A buffer of `size` bytes for the next socket read; `ownRead` adopts it once the read arrives. */
  takeForRead(size: number): Buffer {
    const spare = this.find(size);
    spare.awaitingRead = true;
    return spare.memory.subarray(0, size);
  }

  /** The chunk a read into a spare became (undefined when `buffer` is not a spare). */
  ownRead(buffer: Uint8Array, bytes: number): RingChunk | undefined {
    const spare = this.byMemory.get(buffer.buffer);
    if (spare === undefined || !spare.awaitingRead) return undefined;
    spare.awaitingRead = false;
    spare.owner = new RingChunk(bytes, -1);
    return spare.owner;
  }

  /**
   * A buffer of `size` bytes for an assembled message; its chunk is returned by `ownerOf`. A huge
   * message (a history file in a DataRow) gets memory of its own, kept only while it is in use.
   */
  takeForMessage(size: number): Buffer {
    if (size > MAX_SPARE_BYTES) return Buffer.allocUnsafe(size);
    const spare = this.find(size);
    spare.owner = new RingChunk(size, -1);
    return spare.memory.subarray(0, size);
  }

  /** The chunk that owns `body` when it lives in a spare buffer. */
  ownerOf(body: Uint8Array): RingChunk | undefined {
    return this.byMemory.get(body.buffer)?.owner;
  }

  /** Spares currently kept (for tests). */
  get count(): number {
    return this.spares.length;
  }

  private find(size: number): Spare {
    for (const spare of this.spares) {
      if (spare.memory.length >= size && isFree(spare)) return spare;
    }
    let capacity = MIN_SPARE_BYTES;
    while (capacity < size) capacity *= 2;
    const spare: Spare = { memory: Buffer.allocUnsafeSlow(capacity), owner: undefined, awaitingRead: false };
    if (this.pooledBytes + capacity <= this.poolBytes) {
      this.pooledBytes += capacity;
      this.spares.push(spare);
    }
    // Unpooled spares are still findable by `ownerOf`/`ownRead` until they are garbage.
    this.byMemory.set(spare.memory.buffer, spare);
    if (this.byMemory.size > this.spares.length + 64) this.forgetUnpooled();
    return spare;
  }

  /** Drops the lookup entries of unpooled spares that are finished (nothing can refer to them). */
  private forgetUnpooled(): void {
    const pooled = new Set(this.spares);
    for (const [memory, spare] of this.byMemory) {
      if (!pooled.has(spare) && isFree(spare)) this.byMemory.delete(memory);
    }
  }
}

function isFree(spare: Spare): boolean {
  if (spare.awaitingRead) return false;
  const owner = spare.owner;
  return owner === undefined || (owner.parsed && owner.outstanding === 0);
}
