import assert from "node:assert/strict";
import { test } from "node:test";
import type { RingChunk } from "../../src/connection/read-ring-chunk.js";
import { SpareBuffers } from "../../src/connection/spare-buffers.js";
import { MessageFramer } from "../../src/protocol/framing.js";
import { fillRing, lendingRing } from "../support/lending-ring.js";

test("a spare is reused only once its chunk is parsed and no view of it is lent out", () => {
  const spares = new SpareBuffers();
  const first = spares.takeForMessage(100_000);
  const owner = spares.ownerOf(first)!;
  assert.ok(owner !== undefined, "an assembled body has an owner chunk");
  owner.outstanding++; // the queue lends it out
  const second = spares.takeForMessage(100_000);
  assert.notEqual(second.buffer, first.buffer, "a buffer still in use is never handed out again");
  owner.parsed = true;
  assert.notEqual(spares.takeForMessage(1000).buffer, first.buffer, "still lent out: not free");
  owner.outstanding--;
  assert.equal(spares.takeForMessage(100_000).buffer, first.buffer, "finished: its memory comes back");
});

test("a spare handed to a read stays reserved until the read arrives, then belongs to its chunk", () => {
  const spares = new SpareBuffers();
  const readBuffer = spares.takeForRead(64 * 1024);
  assert.notEqual(spares.takeForRead(64 * 1024).buffer, readBuffer.buffer, "reserved for the pending read");
  const chunk = spares.ownRead(readBuffer, 1234)!;
  assert.equal(chunk.bytes, 1234);
  assert.equal(spares.ownRead(Buffer.alloc(10), 10), undefined, "a buffer that is no spare has no owner");
  chunk.parsed = true;
  assert.equal(spares.takeForMessage(1000).buffer, readBuffer.buffer);
});

test("memory kept for reuse is bounded; beyond it buffers are still tracked while in use", () => {
  const spares = new SpareBuffers(256 * 1024);
  const owners: RingChunk[] = [];
  for (let i = 0; i < 10; i++) {
    const body = spares.takeForMessage(100_000);
    const owner = spares.ownerOf(body)!;
    owner.outstanding++;
    owners.push(owner);
  }
  assert.equal(spares.count, 2, "two 128 KiB spares fit a 256 KiB pool");
  assert.equal(new Set(owners).size, 10, "every buffer in use has its own owner");
  assert.equal(
    spares.ownerOf(spares.takeForMessage(2 * 1024 * 1024)),
    undefined,
    "huge bodies get plain memory",
  );
});

test("a full ring's stand-in reads reuse the same spare once the consumer is done with them", () => {
  const { ring, lent } = lendingRing(1024 * 1024);
  let buffer = fillRing(ring);
  const standIns = new Set<ArrayBufferLike>();
  for (let i = 0; i < 20; i++) {
    standIns.add(buffer.buffer);
    ring.onread.callback(buffer.length, buffer);
    lent.pop()!.outstanding--; // the stand-in read's views are written and given back
    buffer = ring.onread.buffer();
  }
  assert.equal(standIns.size, 1, `20 stand-in reads used ${standIns.size} buffers`);
});

test("the framer assembles a straddling body in memory from its allocator", () => {
  const spares = new SpareBuffers();
  const framer = new MessageFramer(undefined, undefined, (size) => spares.takeForMessage(size));
  const body = Buffer.alloc(5000, 7);
  const message = Buffer.concat([Buffer.from([0x64, 0, 0, 0x13, 0x8c]), body]);
  const bodies: Buffer[] = [];
  // Two reads into separate memory (as a ring wrap or a stand-in gives), so no view can join them.
  const separate = (part: Buffer) => {
    const copy = Buffer.allocUnsafeSlow(part.length);
    part.copy(copy);
    return copy;
  };
  framer.push(separate(message.subarray(0, 3000)), (_type, b) => bodies.push(b));
  framer.push(separate(message.subarray(3000)), (_type, b) => bodies.push(b));
  assert.equal(bodies.length, 1);
  assert.deepEqual(bodies[0], body);
  assert.ok(spares.ownerOf(bodies[0]!) !== undefined, "the body lives in a spare buffer");
});
