/**
 * One socket read's worth of bytes, in the read ring or in a spare buffer. The connection counts
 * the message views of it still lent out; a chunk that is parsed and has none is done, and its
 * memory may be reused.
 */
export class RingChunk {
  /** Message views of this chunk still held by a consumer. */
  outstanding = 0;
  /** The framer has finished with the chunk (only views can still pin it). */
  parsed = false;
  constructor(
    /** Bytes of data the read delivered. */
    readonly bytes: number,
    /** Sequence number after the chunk (grows when the ring wraps: the skipped tail is added to it); -1 outside the ring. */
    public endSeq: number,
  ) {}
}
