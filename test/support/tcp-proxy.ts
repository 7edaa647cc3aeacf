/**
 * A TCP proxy on 127.0.0.1 between pgwal and a test server, for network faults: cut every
 * connection (reset), stall the server-to-client direction (the socket stays open, nothing
 * arrives), and cut a stream after a number of bytes (so it breaks mid-message).
 *
 * Every fault keeps what a real TCP connection guarantees: the client receives a prefix of what
 * the server sent, never a stream with bytes missing in the middle. A connection that has been cut
 * or has had bytes swallowed forwards nothing more; it only waits to be reset.
 */
import net from "node:net";

interface Pair {
  client: net.Socket;
  upstream: net.Socket;
  /** Nothing more may reach the client: the stream was cut, or bytes were swallowed. */
  ended: boolean;
}

export class TcpProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<Pair>();
  private stalled = false;
  /** Server-to-client bytes still to forward (on any connection) before the armed cut. */
  private bytesBeforeCut: number | undefined;
  /** Connections accepted so far. */
  connections = 0;

  private constructor(private readonly targetPort: number) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const proxy = new TcpProxy(targetPort);
    await new Promise<void>((resolve) => proxy.server.listen(0, "127.0.0.1", resolve));
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  private accept(client: net.Socket): void {
    this.connections++;
    const upstream = net.connect({ host: "127.0.0.1", port: this.targetPort });
    const pair: Pair = { client, upstream, ended: false };
    this.pairs.add(pair);
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => this.forward(pair, chunk));
    const close = () => this.reset(pair);
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  }

  private forward(pair: Pair, chunk: Buffer): void {
    if (pair.ended) return;
    if (this.stalled) {
      // Swallowed: the client sees a live but silent connection, which must never speak again
      // (anything it sent later would follow a hole in the stream).
      this.endStream(pair);
      return;
    }
    const budget = this.bytesBeforeCut;
    if (budget !== undefined && chunk.length > budget) {
      this.bytesBeforeCut = undefined;
      // Deliver what fits, then break the connection mid-message once that much has gone out.
      this.endStream(pair);
      pair.client.write(chunk.subarray(0, budget), () => this.reset(pair));
      return;
    }
    if (budget !== undefined) this.bytesBeforeCut = budget - chunk.length;
    pair.client.write(chunk);
  }

  /** Stops forwarding on `pair` for good (the pair is reset later). */
  private endStream(pair: Pair): void {
    pair.ended = true;
    pair.upstream.pause();
  }

  private reset(pair: Pair): void {
    if (!this.pairs.delete(pair)) return;
    pair.ended = true;
    pair.client.resetAndDestroy();
    pair.upstream.destroy();
  }

  /** Resets every open connection (new ones are still accepted). */
  cutAll(): void {
    for (const pair of [...this.pairs]) this.reset(pair);
  }

  /**
   * The connection carrying the server-to-client byte that comes `bytes` bytes after this call is
   * cut just before it: the client receives exactly those `bytes` more, then a reset.
   */
  cutAfter(bytes: number): void {
    this.bytesBeforeCut = bytes;
  }

  /**
   * Server-to-client data is swallowed while stalled (applies to every connection). A connection
   * that lost bytes that way stays silent, and is reset when the stall ends.
   */
  stall(on: boolean): void {
    this.stalled = on;
    if (on) return;
    for (const pair of [...this.pairs]) if (pair.ended) this.reset(pair);
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
