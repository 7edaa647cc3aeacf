import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ReadRing } from "../../src/connection/read-ring.js";
import type { RingChunk } from "../../src/connection/read-ring-chunk.js";
import { fillRing, lendingRing } from "../support/lending-ring.js";

/**
 * Drives a ReadRing the way Node's onread does: the next buffer is requested right after every
 * read — also when that read pauses the socket — and used whenever reading resumes. A consumer
 * holds views of chunks and gives them back in order. Every view must keep its bytes until given
 * back: a region handed out for reading must never overlap a view still held.
 */
test("a region handed out for a read never overlaps data still lent out (Node's call order)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ fill: fc.double({ min: 0.01, max: 1, noNaN: true }), release: fc.nat(4) }), {
        minLength: 1,
        maxLength: 300,
      }),
      (steps) => {
        const ring = new ReadRing(1024 * 1024 * 2);
        const held: { view: Buffer; owner: RingChunk; stamp: number }[] = [];
        // The connection checks for room whenever data is given back (to resume reading).
        ring.whenRoom(() => undefined);
        let stamp = 0;
        ring.setSink((chunk, owner) => {
          owner.outstanding++;
          owner.parsed = true;
          held.push({ view: chunk, owner, stamp: chunk[0]! });
        });
        let next = ring.onread.buffer();
        for (const step of steps) {
          for (const h of held) {
            const overlaps =
              h.view.buffer === next.buffer &&
              next.byteOffset < h.view.byteOffset + h.view.length &&
              h.view.byteOffset < next.byteOffset + next.length;
            assert.ok(!overlaps, "a read region overlaps a chunk still lent out");
          }
          const bytes = Math.max(1, Math.floor(next.length * step.fill));
          stamp = (stamp + 1) % 251;
          next.fill(stamp, 0, bytes);
          ring.onread.callback(bytes, next);
          // Node asks for the next buffer at once, whatever the callback returned.
          next = ring.onread.buffer();
          for (let i = 0; i < step.release && held.length > 0; i++) {
            const h = held.shift()!;
            assert.ok(
              h.view.every((b) => b === h.stamp),
              "a lent-out chunk was overwritten",
            );
            h.owner.outstanding--;
            ring.reclaim();
            void ring.hasRoom;
          }
        }
      },
    ),
    // Fixed: each run fills megabytes, and PGWAL_PROPERTY_RUNS is sized for the tiny codec properties.
    { numRuns: 150 },
  );
});

test("a full ring hands out a stand-in buffer and has no room until data is given back", () => {
  const { ring, lent: owners } = lendingRing(1024 * 1024);
  const buffer = fillRing(ring);
  assert.equal(ring.hasRoom, false);
  // The ring is full: the next read goes to a small stand-in buffer outside it.
  const inRing = owners.map(() => 0).length > 0 && buffer.length === 64 * 1024;
  assert.ok(inRing, `expected the 64 KiB stand-in, got ${buffer.length} bytes`);
  assert.equal(ring.usedBytes, 1024 * 1024);
  let resumed = 0;
  ring.whenRoom(() => resumed++);
  for (const owner of owners) owner.outstanding--;
  ring.reclaim();
  assert.equal(resumed, 1);
  assert.equal(ring.hasRoom, true);
  assert.equal(ring.usedBytes, 0);
});

test("reading is resumed only after a read was held back, not on every reclaim", () => {
  const { ring, lent: owners } = lendingRing(1024 * 1024);
  let resumed = 0;
  ring.whenRoom(() => resumed++);
  const giveBack = () => {
    for (const owner of owners.splice(0)) owner.outstanding--;
    ring.reclaim();
  };
  // Small reads that leave room: Node keeps reading, so nothing needs resuming.
  for (let i = 0; i < 5; i++) {
    const buffer = ring.onread.buffer();
    assert.equal(ring.onread.callback(1000, buffer), true);
    giveBack();
  }
  assert.equal(resumed, 0, "a resume per batch is a wasted tick and read restart");
  // A read that fills the ring holds reading back; giving the room back resumes it, once.
  fillRing(ring);
  giveBack();
  assert.equal(resumed, 1);
  giveBack();
  assert.equal(resumed, 1);
});

test("room given back while a read buffer is outstanding never moves that buffer (wrap case)", () => {
  const ring = new ReadRing(1024 * 1024);
  const held: { view: Buffer; owner: RingChunk }[] = [];
  ring.setSink((chunk, owner) => {
    owner.outstanding++;
    owner.parsed = true;
    held.push({ view: chunk, owner });
  });
  ring.whenRoom(() => undefined);
  // A read fills 800 KiB: the 224 KiB left before the ring's end is too short for the next read.
  let next = ring.onread.buffer();
  next.fill(1, 0, 800 * 1024);
  assert.equal(ring.onread.callback(800 * 1024, next), false, "no room: reading pauses");
  next = ring.onread.buffer(); // Node asks at once, and keeps this buffer until reading resumes
  // The consumer gives the chunk back; the connection checks for room and resumes reading.
  const first = held.shift()!;
  first.owner.outstanding--;
  ring.reclaim();
  assert.equal(ring.hasRoom, true);
  next.fill(2, 0, Math.min(next.length, 200 * 1024));
  const bytes = Math.min(next.length, 200 * 1024);
  ring.onread.callback(bytes, next);
  const second = held[0]!;
  const following = ring.onread.buffer();
  const overlaps =
    following.buffer === second.view.buffer &&
    following.byteOffset < second.view.byteOffset + second.view.length &&
    second.view.byteOffset < following.byteOffset + following.length;
  assert.ok(!overlaps, "the next read region overlaps the chunk just read");
  assert.ok(second.view.every((b) => b === 2));
});
