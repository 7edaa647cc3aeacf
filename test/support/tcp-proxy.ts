/**
 * A TCP proxy on 127.0.0.1 between pgwal and a test server, for network faults: cut every
 * connection (reset), stall the server-to-client direction (the socket stays open, nothing
 * arrives), and cut a stream after a number of bytes (so it breaks mid-message).
 */
import net from "node:net";

export class TcpProxy {
  private readonly server: net.Server;
  private readonly pairs = new Set<{ client: net.Socket; upstream: net.Socket }>();
  private stalled = false;
  private cutAfterBytes: number | undefined;
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
    const pair = { client, upstream };
    this.pairs.add(pair);
    let forwarded = 0;
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk: Buffer) => {
      if (this.stalled) return; // swallowed: the client sees a live but silent connection
      if (this.cutAfterBytes !== undefined && forwarded + chunk.length > this.cutAfterBytes) {
        // Deliver part of the chunk, then break the connection mid-message.
        client.write(chunk.subarray(0, Math.max(0, this.cutAfterBytes - forwarded)), () => this.reset(pair));
        this.cutAfterBytes = undefined;
        return;
      }
      forwarded += chunk.length;
      client.write(chunk);
    });
    const close = () => this.reset(pair);
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  }

  private reset(pair: { client: net.Socket; upstream: net.Socket }): void {
    if (!this.pairs.delete(pair)) return;
    pair.client.resetAndDestroy();
    pair.upstream.destroy();
  }

  /** Resets every open connection (new ones are still accepted). */
  cutAll(): void {
    for (const pair of [...this.pairs]) this.reset(pair);
  }

  /** The next server-to-client bytes past `bytes` more are cut mid-stream. */
  cutAfter(bytes: number): void {
    this.cutAfterBytes = bytes;
  }

  /** Server-to-client data is swallowed while stalled (applies to every connection). */
  stall(on: boolean): void {
    this.stalled = on;
  }

  async close(): Promise<void> {
    this.cutAll();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
