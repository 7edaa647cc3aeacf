/**
 * The HTTP side of --metrics-listen: GET /metrics (Prometheus text format) and GET /healthz
 * (200 while healthy, else 503, with the reason as text). It listens only where it is told.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { UsageError } from "../errors.js";
import type { ReceiverMetrics } from "./metrics.js";
import type { ListenAddress } from "./options.js";

export interface MetricsServer {
  /** Where it listens (the real port when 0 was asked for). */
  address: ListenAddress;
  close(): Promise<void>;
}

/**
 * Bounds on what clients may hold, so that slow or idle ones cannot take the file descriptors the
 * receiver needs for the archive (an EMFILE there fails a directory fsync, which stops it).
 */
export interface MetricsServerLimits {
  /** Connections open at once; further ones are closed as they arrive. */
  maxConnections: number;
  /** Time a client has to send its request headers, and the longest a connection may sit silent. */
  headersTimeoutMs: number;
  /** Time a client has to send its whole request. */
  requestTimeoutMs: number;
  /** Time an idle keep-alive connection stays open after a response. */
  keepAliveTimeoutMs: number;
  /** How often the two request timeouts are checked. */
  checkIntervalMs: number;
}

export const DEFAULT_METRICS_SERVER_LIMITS: MetricsServerLimits = {
  maxConnections: 16,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 5_000,
  checkIntervalMs: 1_000,
};

export async function startMetricsServer(
  metrics: Pick<ReceiverMetrics, "registry" | "health">,
  listen: ListenAddress,
  limits: MetricsServerLimits = DEFAULT_METRICS_SERVER_LIMITS,
): Promise<MetricsServer> {
  const serverOptions = {
    headersTimeout: limits.headersTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
  };
  const server: Server = createServer(serverOptions, (request, response) => {
    const path = (request.url ?? "/").split("?")[0];
    if (request.method !== "GET" && request.method !== "HEAD") {
      response
        .writeHead(405, { allow: "GET, HEAD", "content-type": "text/plain" })
        .end("method not allowed\n");
      return;
    }
    if (path === "/metrics") {
      metrics.registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": metrics.registry.contentType }).end(text),
        (error: unknown) =>
          response.writeHead(500, { "content-type": "text/plain" }).end(`${String(error)}\n`),
      );
      return;
    }
    if (path === "/healthz") {
      const health = metrics.health();
      response
        .writeHead(health.healthy ? 200 : 503, { "content-type": "text/plain", "cache-control": "no-store" })
        .end(`${health.healthy ? "ok" : "unhealthy"}: ${health.reason}\n`);
      return;
    }
    response.writeHead(404, { "content-type": "text/plain" }).end("try /metrics or /healthz\n");
  });
  server.maxConnections = limits.maxConnections;
  // The request timeouts only start with a request's first byte: a client that connects and sends
  // nothing is ended by the socket's inactivity timeout.
  server.setTimeout(limits.headersTimeoutMs);
  // A scrape must never keep the process alive after the receiver stopped.
  server.unref();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (error) =>
      reject(
        new UsageError(`could not listen on ${formatListenAddress(listen)} for metrics: ${error.message}`, {
          cause: error,
        }),
      ),
    );
    server.listen({ host: listen.host, port: listen.port }, () => resolve());
  });
  const bound = server.address() as AddressInfo;
  return {
    address: { host: listen.host, port: bound.port },
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export function formatListenAddress(address: ListenAddress): string {
  return address.host.includes(":") ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
