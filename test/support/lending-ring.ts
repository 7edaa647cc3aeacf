import { ReadRing } from "../../src/connection/read-ring.js";
import type { RingChunk } from "../../src/connection/read-ring-chunk.js";

/**
 * A ReadRing whose consumer parses every chunk at once and keeps it lent out (in `lent`, oldest
 * first) until the test decrements its `outstanding` and calls `reclaim`.
 */
export function lendingRing(capacity: number): { ring: ReadRing; lent: RingChunk[] } {
  const ring = new ReadRing(capacity);
  const lent: RingChunk[] = [];
  ring.setSink((_chunk, owner) => {
    owner.outstanding++;
    owner.parsed = true;
    lent.push(owner);
  });
  return { ring, lent };
}

/**
 * Reads full buffers until the ring says it has no room, in Node's call order (the next buffer is
 * asked for right after every read), and returns that next buffer.
 */
export function fillRing(ring: ReadRing): Buffer {
  let buffer = ring.onread.buffer();
  let roomy = true;
  while (roomy) {
    roomy = ring.onread.callback(buffer.length, buffer);
    buffer = ring.onread.buffer();
  }
  return buffer;
}
