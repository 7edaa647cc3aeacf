/**
 * The metrics listener must not let clients hold file descriptors without bound: the receiver
 * needs them for the archive (an EMFILE there fails a directory fsync, which stops it).
 */
import assert from "node:assert/strict";
import { request } from "node:http";
import { connect, type Socket } from "node:net";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Registry } from "prom-client";
import {
  DEFAULT_METRICS_SERVER_LIMITS,
  type MetricsServer,
  startMetricsServer,
} from "../../src/cli/metrics-server.js";

const fakeMetrics = {
  registry: new Registry(),
  health: () => ({ healthy: true, reason: "streaming" }),
};

/** Opens `count` connections that never send a byte; `closed` counts those the server ended. */
async function idleConnections(
  port: number,
  count: number,
): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<Socket>((resolve, reject) => {
          const socket = connect({ host: "127.0.0.1", port }, () => resolve(socket));
          socket.once("error", reject);
          socket.once("close", () => closed++);
        }),
    ),
  );
  for (const socket of sockets) socket.on("error", () => {});
  return { sockets, closed: () => closed };
}

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path, agent: false }, (response) => {
      let body = "";
      response.setEncoding("utf8");
      response.on("data", (piece: string) => (body += piece));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    req.once("error", reject);
    req.end();
  });
}

async function waitUntil(what: string, probe: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

test("connections beyond the cap are closed at once; the listener keeps serving", async () => {
  const limits = {
    ...DEFAULT_METRICS_SERVER_LIMITS,
    maxConnections: 4,
    headersTimeoutMs: 60_000,
    requestTimeoutMs: 60_000,
  };
  const server: MetricsServer = await startMetricsServer(fakeMetrics, { host: "127.0.0.1", port: 0 }, limits);
  try {
    const idle = await idleConnections(server.address.port, 24);
    await waitUntil("the connections beyond the cap to be closed", () => idle.closed() >= 20, 3000);
    await sleep(200);
    assert.equal(idle.closed(), 20, "exactly the connections beyond the cap are closed");
    for (const socket of idle.sockets) socket.destroy();
    // The server counts a connection until it has seen its close: retry briefly.
    let health = await get(server.address.port, "/healthz").catch(() => undefined);
    for (let i = 0; i < 20 && health === undefined; i++) {
      await sleep(100);
      health = await get(server.address.port, "/healthz").catch(() => undefined);
    }
    assert.ok(health !== undefined, "/healthz did not answer once the idle connections were gone");
    assert.equal(health.status, 200);
    assert.match(health.body, /ok: streaming/);
  } finally {
    await server.close();
  }
});

test("a connection that sends no request is closed after the headers timeout", async () => {
  const limits = {
    ...DEFAULT_METRICS_SERVER_LIMITS,
    headersTimeoutMs: 300,
    requestTimeoutMs: 300,
    checkIntervalMs: 100,
  };
  const server = await startMetricsServer(fakeMetrics, { host: "127.0.0.1", port: 0 }, limits);
  try {
    const idle = await idleConnections(server.address.port, 3);
    await waitUntil("idle connections to be closed", () => idle.closed() === 3, 5000);
    assert.equal((await get(server.address.port, "/healthz")).status, 200);
  } finally {
    await server.close();
  }
});

test("the defaults bound connections and every timeout", () => {
  const { maxConnections, headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs } =
    DEFAULT_METRICS_SERVER_LIMITS;
  assert.ok(maxConnections > 0 && maxConnections <= 64);
  for (const timeout of [headersTimeoutMs, requestTimeoutMs, keepAliveTimeoutMs])
    assert.ok(timeout > 0 && timeout <= 30_000);
});
