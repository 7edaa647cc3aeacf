import assert from "node:assert/strict";
import { test } from "node:test";
import { ProtocolError } from "../../src/errors.js";
import { DEFAULT_MAX_MESSAGE_LENGTH, MessageFramer } from "../../src/protocol/framing.js";
import {
  backendMessage,
  commandComplete,
  copyDone,
  dataRow,
  errorResponse,
  keepalive,
  readyForQuery,
  xlogData,
} from "../support/backend-builders.js";
import { assertProtocolError, hex } from "../support/protocol-asserts.js";

interface Received {
  type: number;
  body: Buffer;
}

/** Feeds `chunks` to a fresh framer and returns copies of what it delivered. */
function frameAll(chunks: readonly Buffer[], framer = new MessageFramer()): Received[] {
  const received: Received[] = [];
  for (const chunk of chunks) {
    framer.push(chunk, (type, body) => received.push({ type, body: Buffer.from(body) }));
  }
  return received;
}

const messages = [
  readyForQuery("I"),
  backendMessage("Z", Buffer.from("T")),
  copyDone(), // empty body
  dataRow(["16/B374D848", null, ""]),
  xlogData(0x1_0000_0000n, 0x1_0000_0100n, 12345n, Buffer.from("some WAL bytes")),
  keepalive(0x1_0000_0100n, 99n, true),
  errorResponse({ severity: "ERROR", code: "XX000", message: "boom" }),
  commandComplete("START_REPLICATION"),
];
const stream = Buffer.concat(messages);
const expected: Received[] = messages.map((m) => ({ type: m[0]!, body: m.subarray(5) }));

test("DEFAULT_MAX_MESSAGE_LENGTH is 1 GiB + 64 KiB", () => {
  assert.equal(DEFAULT_MAX_MESSAGE_LENGTH, 1073741824 + 65536);
});

test("a whole stream in one chunk yields every message in order", () => {
  const framer = new MessageFramer();
  assert.deepEqual(frameAll([stream], framer), expected);
  assert.equal(framer.pendingBytes, 0);
});

test("splitting the stream into two chunks at every position changes nothing", () => {
  for (let i = 0; i <= stream.length; i++) {
    const framer = new MessageFramer();
    assert.deepEqual(
      frameAll([stream.subarray(0, i), stream.subarray(i)], framer),
      expected,
      `split at ${i}`,
    );
    assert.equal(framer.pendingBytes, 0);
  }
});

test("splitting into three chunks at every pair of positions changes nothing", () => {
  for (let i = 0; i <= stream.length; i++) {
    for (let j = i; j <= stream.length; j++) {
      const chunks = [stream.subarray(0, i), stream.subarray(i, j), stream.subarray(j)];
      assert.deepEqual(frameAll(chunks), expected, `split at ${i} and ${j}`);
    }
  }
});

test("one byte at a time: messages arrive as their last byte does, pendingBytes counts held bytes", () => {
  const framer = new MessageFramer();
  const received: Received[] = [];
  let messageStart = 0;
  let index = 0;
  for (let i = 0; i < stream.length; i++) {
    framer.push(stream.subarray(i, i + 1), (type, body) => received.push({ type, body: Buffer.from(body) }));
    const messageEnd = messageStart + messages[index]!.length;
    if (i + 1 === messageEnd) {
      assert.equal(received.length, index + 1, `message ${index} delivered at byte ${i}`);
      assert.equal(framer.pendingBytes, 0);
      messageStart = messageEnd;
      index++;
    } else {
      assert.equal(received.length, index, `nothing early at byte ${i}`);
      assert.equal(framer.pendingBytes, i + 1 - messageStart);
    }
  }
  assert.deepEqual(received, expected);
});

test("an empty chunk is a no-op, also in the middle of a message", () => {
  const framer = new MessageFramer();
  const received = frameAll(
    [Buffer.alloc(0), stream.subarray(0, 3), Buffer.alloc(0), stream.subarray(3)],
    framer,
  );
  assert.deepEqual(received, expected);
});

test("a message lying inside a chunk is delivered as a view of that chunk (no copy)", () => {
  // Buffer.alloc is never pooled, so sharing the ArrayBuffer proves the body is a view.
  const backing = Buffer.alloc(stream.length + 16);
  const chunk = backing.subarray(7, 7 + stream.length);
  stream.copy(chunk);
  const bodies: Buffer[] = [];
  new MessageFramer().push(chunk, (_type, body) => bodies.push(body));
  assert.equal(bodies.length, messages.length);
  let offset = 0;
  for (const [i, body] of bodies.entries()) {
    assert.equal(body.buffer, chunk.buffer, `message ${i} shares the chunk's memory`);
    assert.equal(body.byteOffset, chunk.byteOffset + offset + 5);
    offset += messages[i]!.length;
  }
  chunk[5] = "X".charCodeAt(0); // first body byte of ReadyForQuery
  assert.equal(bodies[0]!.toString("latin1"), "X");
});

test("a message split across chunks of separate memory is assembled into a buffer of exactly its length", () => {
  const body = Buffer.alloc(100_000, 0xab);
  const message = backendMessage("d", body);
  // Copies: each chunk in its own memory, as Node's 'data' events deliver them.
  const chunks = [message.subarray(0, 3), message.subarray(3, 50_000), message.subarray(50_000)].map((c) =>
    Buffer.from(c),
  );
  const delivered: Buffer[] = [];
  const framer = new MessageFramer();
  for (const chunk of chunks) framer.push(chunk, (_type, b) => delivered.push(b));
  assert.equal(delivered.length, 1);
  const assembled = delivered[0]!;
  assert.equal(assembled.length, body.length);
  // Exact-size allocation, not a grown or concatenated buffer, and not a view of any chunk.
  assert.equal(assembled.buffer.byteLength, body.length);
  assert.ok(chunks.every((c) => c.buffer !== assembled.buffer));
  assert.ok(assembled.equals(body));
});

test("a message split across adjacent chunks of one buffer is a view of it, not a copy", () => {
  const body = Buffer.alloc(100_000, 0xcd);
  const stream = Buffer.concat([readyForQuery("I"), backendMessage("d", body), readyForQuery("T")]);
  // A reader filling one buffer in order (the read ring) delivers adjacent views.
  const chunks = [stream.subarray(0, 9), stream.subarray(9, 50_000), stream.subarray(50_000)];
  const delivered: { type: number; body: Buffer; fromCarry: boolean }[] = [];
  const framer = new MessageFramer();
  const carried: number[] = [];
  for (const chunk of chunks) {
    framer.push(chunk, (type, b, fromCarry) => delivered.push({ type, body: b, fromCarry }));
    carried.push(framer.carriedBytes);
  }
  assert.deepEqual(
    delivered.map((d) => String.fromCharCode(d.type)),
    ["Z", "d", "Z"],
  );
  const message = delivered[1]!;
  assert.equal(message.body.buffer, stream.buffer, "the body is a view of the reader's buffer");
  assert.ok(message.body.equals(body));
  assert.equal(message.fromCarry, true, "it began in an earlier chunk");
  assert.equal(delivered[2]!.fromCarry, false);
  assert.deepEqual(carried, [3, 50_000 - 6, 0]);
});

test("a straddling message larger than the carry limit is assembled, pinning nothing", () => {
  const body = Buffer.alloc(4096, 0xef);
  const message = backendMessage("d", body);
  const framer = new MessageFramer(undefined, 1024);
  const delivered: Buffer[] = [];
  framer.push(message.subarray(0, 2000), (_t, b) => delivered.push(b));
  assert.equal(framer.carriedBytes, 0, "a large message is copied out, not carried");
  framer.push(message.subarray(2000), (_t, b) => delivered.push(b));
  assert.equal(delivered.length, 1);
  assert.notEqual(delivered[0]!.buffer, message.buffer);
  assert.ok(delivered[0]!.equals(body));
});

test("a huge message across many uneven chunks arrives intact, once", () => {
  const size = 3 * 1024 * 1024 + 17;
  const body = Buffer.alloc(size);
  for (let i = 0; i < size; i += 4096) body.writeUInt32BE(i, i);
  const message = Buffer.concat([backendMessage("d", body), readyForQuery("I")]);
  const framer = new MessageFramer();
  const received: Received[] = [];
  let pos = 0;
  let step = 1;
  let pushes = 0;
  while (pos < message.length) {
    const next = Math.min(message.length, pos + step);
    framer.push(message.subarray(pos, next), (type, b) => received.push({ type, body: b }));
    pos = next;
    step = (step * 7 + 13) % 9973; // uneven sizes, including 0
    pushes++;
    if (received.length === 0) assert.ok(framer.pendingBytes <= pos);
  }
  assert.ok(pushes > 500, `fed in ${pushes} chunks`);
  assert.equal(received.length, 2);
  assert.equal(received[0]!.type, 0x64);
  assert.ok(received[0]!.body.equals(body));
  assert.deepEqual(
    { type: received[1]!.type, body: Buffer.from(received[1]!.body) },
    {
      type: 0x5a,
      body: Buffer.from("I"),
    },
  );
  assert.equal(framer.pendingBytes, 0);
});

test("pendingBytes reports header fragments and partial bodies", () => {
  const framer = new MessageFramer();
  const message = dataRow(["abcdef"]);
  const noop = () => assert.fail("nothing should be delivered yet");
  framer.push(message.subarray(0, 3), noop);
  assert.equal(framer.pendingBytes, 3);
  framer.push(message.subarray(3, 7), noop);
  assert.equal(framer.pendingBytes, 7);
  framer.push(message.subarray(7, message.length - 1), noop);
  assert.equal(framer.pendingBytes, message.length - 1);
  let delivered = 0;
  framer.push(message.subarray(message.length - 1), () => {
    delivered++;
    assert.equal(framer.pendingBytes, 0, "state is reset before the handler runs");
  });
  assert.equal(delivered, 1);
});

test("a length below 4 is rejected, whole or split, and the framer stays failed", () => {
  for (const length of ["00000003", "00000000", "ffffffff", "80000000"]) {
    const bad = hex(`44 ${length} 00 00 00 00`);
    assertProtocolError(() => frameAll([bad]), /invalid length -?\d+ in DataRow \('D'\)/);
    const framer = new MessageFramer();
    assertProtocolError(() => {
      framer.push(bad.subarray(0, 2), () => {});
      framer.push(bad.subarray(2), () => {});
    });
    assertProtocolError(() => framer.push(readyForQuery(), () => {}), /unusable/);
  }
});

test("the maximum length is inclusive; one more is rejected with the limit in the message", () => {
  const framer = new MessageFramer(104);
  const ok = backendMessage("d", Buffer.alloc(100));
  assert.equal(frameAll([ok], framer).length, 1);
  const tooLong = backendMessage("d", Buffer.alloc(101));
  assertProtocolError(() => frameAll([tooLong], new MessageFramer(104)), /length 105 .*limit 104/);
  // Rejected as soon as the header is complete, before the body arrives.
  const split = new MessageFramer(104);
  split.push(tooLong.subarray(0, 4), () => {});
  assertProtocolError(() => split.push(tooLong.subarray(4, 5), () => {}));
});

test("messages before a bad header in the same chunk are still delivered", () => {
  const chunk = Buffer.concat([readyForQuery("I"), hex("45 00000002")]);
  const received: number[] = [];
  assert.throws(
    () => new MessageFramer().push(chunk, (type) => received.push(type)),
    (error: unknown) => error instanceof ProtocolError,
  );
  assert.deepEqual(received, [0x5a]);
});

test("an error thrown by the handler propagates and leaves the framer unusable", () => {
  const framer = new MessageFramer();
  const boom = new Error("handler failed");
  assert.throws(
    () =>
      framer.push(stream, () => {
        throw boom;
      }),
    boom,
  );
  assertProtocolError(() => framer.push(readyForQuery(), () => {}), /unusable/);
});

test("the constructor rejects a nonsensical limit", () => {
  for (const bad of [3, 0, -1, 1.5, Number.NaN, 2 ** 31]) {
    assert.throws(() => new MessageFramer(bad), RangeError, String(bad));
  }
});
