import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import tls from "node:tls";
import { ReadRing } from "../../src/connection/read-ring.js";
import { readTlsIntoRing } from "../../src/connection/tls-ring-reads.js";

/** The user-buffer field of a socket, found the way readTlsIntoRing finds it. */
function userBuffer(socket: net.Socket): unknown {
  const symbol = Object.getOwnPropertySymbols(socket).find((s) => s.description === "kBuffer");
  assert.ok(symbol, "this Node.js has no kBuffer field on sockets");
  return (socket as unknown as Record<symbol, unknown>)[symbol];
}

test("a TLS socket wrapping an open socket gets the ring as its read buffer", () => {
  const raw = new net.Socket();
  const secure = new tls.TLSSocket(raw);
  try {
    const ring = new ReadRing(1024 * 1024);
    assert.equal(userBuffer(secure), null, "tls.TLSSocket has no reader of its own when given a socket");
    assert.equal(readTlsIntoRing(secure, ring), true);
    const buffer = userBuffer(secure);
    assert.ok(buffer instanceof Uint8Array && buffer.length > 0);
    // The region handed out is the ring's next read region (the ring's memory, not a fresh buffer).
    const next = ring.onread.buffer();
    assert.equal(buffer.buffer, next.buffer);
    assert.equal(buffer.byteOffset, next.byteOffset);
  } finally {
    secure.destroy();
    raw.destroy();
  }
});

test("a socket that already has a reader is left alone (the caller keeps 'data' events)", () => {
  const raw = new net.Socket();
  const secure = new tls.TLSSocket(raw);
  try {
    const ring = new ReadRing(1024 * 1024);
    assert.equal(readTlsIntoRing(secure, ring), true);
    const installed = userBuffer(secure);
    assert.equal(readTlsIntoRing(secure, new ReadRing(1024 * 1024)), false);
    assert.equal(userBuffer(secure), installed);
  } finally {
    secure.destroy();
    raw.destroy();
  }
});
