/**
 * Self-test of the fault proxy: whatever fault it injects, the client receives a prefix of the
 * server's bytes, as over any TCP connection. A proxy that drops bytes in the middle of a stream
 * makes the receiver write a segment with a hole in it, and the fault tests would then blame pgwal
 * for a corruption the network cannot produce (a reset-mid-message run once "found" 64 KiB of a
 * segment replaced by the bytes that followed them).
 */
import assert from "node:assert/strict";
import net from "node:net";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { TcpProxy } from "../support/tcp-proxy.js";
import { waitFor } from "../support/wait-for.js";

const PIECE = 64 * 1024;

function byteAt(position: number): number {
  return ((position * 31) ^ (position >>> 9) ^ (position >>> 17)) & 0xff;
}

/** A server whose stream is byteAt(0), byteAt(1), …; `send` writes the next `bytes` of it to every client. */
class Sender {
  private readonly sockets = new Set<net.Socket>();
  /** Bytes of the stream written so far: a new client's first byte is the one at this position. */
  position = 0;
  private constructor(readonly server: net.Server) {
    server.on("connection", (socket) => {
      socket.on("error", () => {});
      socket.on("close", () => this.sockets.delete(socket));
      this.sockets.add(socket);
    });
  }

  static async start(): Promise<Sender> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new Sender(server);
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get connections(): number {
    return this.sockets.size;
  }

  send(bytes: number): void {
    for (let end = this.position + bytes; this.position < end; ) {
      const piece = Buffer.alloc(Math.min(PIECE, end - this.position));
      for (let i = 0; i < piece.length; i++) piece[i] = byteAt(this.position + i);
      this.position += piece.length;
      for (const socket of this.sockets) socket.write(piece);
    }
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A client that reads only when told to, and checks every byte against the server's stream. */
class Reader {
  received = 0;
  private readonly start = sender.position;
  /** Position of the first byte that is not the server's byte there. */
  firstWrong: number | undefined;
  closed = false;
  readonly socket: net.Socket;

  constructor(port: number) {
    this.socket = net.connect({ host: "127.0.0.1", port });
    this.socket.on("error", () => {});
    this.socket.on("close", () => {
      this.closed = true;
    });
    this.socket.on("data", (chunk: Buffer) => {
      for (let i = 0; i < chunk.length && this.firstWrong === undefined; i++) {
        if (chunk[i] !== byteAt(this.start + this.received + i)) this.firstWrong = this.received + i;
      }
      this.received += chunk.length;
    });
    this.socket.pause();
  }
}

let sender: Sender;
let proxy: TcpProxy;
before(async () => {
  sender = await Sender.start();
  proxy = await TcpProxy.start(sender.port);
});
after(async () => {
  await proxy.close();
  await sender.close();
});

test("a cut armed after the proxy has already forwarded that much leaves the client a prefix, ending at most that many bytes later", async () => {
  const reader = new Reader(proxy.port);
  await waitFor("the proxy to connect upstream", () => sender.connections === 1 || undefined, 10_000);
  // The client is not reading, as pgwal does while its disk is busy: more arrives than the kernel
  // buffers hold, so the proxy queues the rest.
  const before = 32 * 1024 * 1024;
  sender.send(before);
  await sleep(300);
  proxy.cutAfter(100_007);
  // More comes from the server before the client catches up (a walsender streaming a backlog).
  sender.send(16 * 1024 * 1024);
  await sleep(300);
  reader.socket.resume();
  await waitFor("the cut to reach the client", () => reader.closed || undefined, 20_000);
  assert.equal(reader.firstWrong, undefined, `byte ${reader.firstWrong} is not the server's byte there`);
  // A reset discards what the client had not read yet, so it may get less, never more.
  assert.ok(reader.received <= before + 100_007, `${reader.received} bytes arrived`);
});

test("a connection that had bytes swallowed by a stall never forwards again, and is reset when the stall ends", async () => {
  const reader = new Reader(proxy.port);
  await waitFor("the proxy to connect upstream", () => sender.connections === 1 || undefined, 10_000);
  reader.socket.resume();
  sender.send(1024 * 1024);
  await waitFor("the first MiB to arrive", () => reader.received === 1024 * 1024 || undefined, 10_000);
  proxy.stall(true);
  sender.send(PIECE);
  await sleep(100);
  proxy.stall(false);
  sender.send(1024 * 1024);
  await waitFor("the connection to be reset", () => reader.closed || undefined, 10_000);
  assert.equal(reader.firstWrong, undefined, `byte ${reader.firstWrong} is not the server's byte there`);
  assert.equal(reader.received, 1024 * 1024);
});
