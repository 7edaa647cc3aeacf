/**
 * Faults against real servers. Every test ends with the "nothing lost" checks: complete segments
 * byte-identical to the server's and contiguous, the partial segment holding everything up to the
 * last position, and the flush position the server saw never beyond what pgwal had fsynced.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { ArchiveError, StorageError } from "../../src/errors.js";
import { formatLsn, type Lsn, maxLsn, parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { type ReceiverOptions, WalReceiver } from "../../src/receiver/receiver.js";
import { nodeFileSystem, type WalFileSystem } from "../../src/wal/fsync.js";
import {
  assertArchiveCovers,
  assertCompleteSegmentsMatchServer,
  assertPartialMatchesServer,
  listArchive,
  offsetIn,
} from "../support/archive-asserts.js";
import { PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { runCommand } from "../support/run.js";
import { TcpProxy } from "../support/tcp-proxy.js";

let cluster: PgCluster;
before(async () => {
  cluster = await startSharedCluster({
    name: "faults",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "512MB" },
  });
});

const childScript = join(fileURLToPath(new URL(".", import.meta.url)), "../support/receiver-child.js");

function settingsFor(port: number, host = "127.0.0.1") {
  return resolveConnectionSettings({
    overrides: { host, port: String(port), user: TEST_USERS.trust.name, sslmode: "disable" },
    forced: { replication: "true" },
    env: {},
  });
}

function receiver(options: Partial<ReceiverOptions> & { directory: string; port?: number }): WalReceiver {
  return new WalReceiver({
    connection: settingsFor(options.port ?? cluster.port),
    logger: silentLogger,
    reconnectDelayMs: { initial: 100, max: 400 },
    ...options,
  });
}

async function workload(server: PgCluster, rows: number): Promise<Lsn> {
  return parseLsn(
    await server.sql(
      `CREATE TABLE IF NOT EXISTS f (id bigserial, pad text); INSERT INTO f (pad) SELECT repeat('f', 400) FROM generate_series(1, ${rows}); SELECT pg_current_wal_lsn();`,
    ),
  );
}

async function slotRestart(server: PgCluster, slot: string): Promise<Lsn | undefined> {
  const text = await server.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`);
  return text === "" ? undefined : parseLsn(text);
}

/** Streams to `endpos` with a fresh receiver, then runs the full "nothing lost" checks. */
async function finishAndCheck(dir: string, server: PgCluster, slot: string, endpos: Lsn): Promise<void> {
  const last = new WalReceiver({
    connection: settingsFor(server.port),
    directory: dir,
    slot,
    endpos,
    logger: silentLogger,
  });
  assert.deepEqual(await last.run(), { reason: "endpos" });
  const summary = await assertCompleteSegmentsMatchServer(dir, server);
  await assertPartialMatchesServer(
    dir,
    summary.partial.at(-1)!,
    server,
    offsetIn(endpos, server.walSegmentSize),
  );
}

async function waitFor(
  what: string,
  check: () => Promise<boolean> | boolean,
  timeoutMs = 30_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe("kill -9 storm", () => {
  const kills = Number(process.env.PGWAL_KILLS ?? 25);
  test(`${kills} kills at random moments under a workload lose nothing`, {
    timeout: 20 * 60_000,
  }, async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-storm-"));
    await cluster.sql("SELECT pg_create_physical_replication_slot('storm', true)");
    // A second slot that never moves keeps every segment on the server for the byte comparisons.
    await cluster.sql("SELECT pg_create_physical_replication_slot('storm_witness', true)");
    // Until pgwal reports a flush, the slot sits where it was created: nothing to check yet.
    const created = await slotRestart(cluster, "storm");
    const options = JSON.stringify({
      host: "127.0.0.1",
      port: cluster.port,
      user: TEST_USERS.trust.name,
      directory: dir,
      slot: "storm",
    });
    let writing = true;
    const load = (async () => {
      while (writing) {
        await workload(cluster, 2000);
        await sleep(100);
      }
    })();
    try {
      for (let kill = 0; kill < kills; kill++) {
        const child = spawn(process.execPath, [childScript, options], {
          stdio: ["ignore", "ignore", "inherit"],
        });
        await sleep(150 + Math.floor(Math.random() * 900));
        child.kill("SIGKILL");
        await new Promise((resolve) => child.once("exit", resolve));
        const restart = await slotRestart(cluster, "storm");
        if (restart !== undefined && restart !== created) await assertArchiveCovers(dir, cluster, restart);
      }
    } finally {
      writing = false;
      await load;
    }
    await finishAndCheck(dir, cluster, "storm", await workload(cluster, 10));
    assert.ok((await listArchive(dir)).complete.length >= 5, "the storm streamed several segments");
    await cluster.sql("SELECT pg_drop_replication_slot('storm'), pg_drop_replication_slot('storm_witness')");
    await rm(dir, { recursive: true });
  });
});

describe("network faults through a proxy", () => {
  let proxy: TcpProxy;
  before(async () => {
    proxy = await TcpProxy.start(cluster.port);
  });
  after(async () => proxy.close());

  test("a connection reset mid-message: reconnect and resume with no gap", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-cut-"));
    await cluster.sql("SELECT pg_create_physical_replication_slot('cut', true)");
    const r = receiver({ directory: dir, slot: "cut", port: proxy.port });
    let disconnects = 0;
    let streams = 0;
    r.on("disconnected", () => disconnects++);
    r.on("streaming", () => streams++);
    const running = r.run();
    await waitFor("streaming", () => streams === 1);
    proxy.cutAfter(100_000 + 7); // lands inside an XLogData message
    await workload(cluster, 3000);
    await waitFor("a reconnect", () => disconnects >= 1 && streams >= 2);
    proxy.cutAll(); // and a plain reset as well
    const endpos = await workload(cluster, 3000);
    await waitFor("streaming to catch up", () => r.positions.written >= endpos);
    r.stop();
    assert.deepEqual(await running, { reason: "stopped" });
    assert.ok(disconnects >= 2, `only ${disconnects} disconnects`);
    await finishAndCheck(dir, cluster, "cut", await workload(cluster, 10));
    await cluster.sql("SELECT pg_drop_replication_slot('cut')");
    await rm(dir, { recursive: true });
  });

  test("a stalled stream is detected and reconnected", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-stall-"));
    await cluster.sql("SELECT pg_create_physical_replication_slot('stall', true)");
    const r = receiver({ directory: dir, slot: "stall", port: proxy.port, stallTimeoutMs: 1500 });
    const errors: string[] = [];
    r.on("disconnected", (e) => errors.push(e.error.message));
    const running = r.run();
    await new Promise((resolve) => r.once("streaming", resolve));
    proxy.stall(true);
    await workload(cluster, 2000);
    await waitFor("the stall to be noticed", () => errors.length >= 1, 10_000);
    proxy.stall(false);
    proxy.cutAll(); // the stalled connection's buffered bytes must not reach the new one
    const endpos = await workload(cluster, 2000);
    await waitFor("streaming to catch up", () => r.positions.written >= endpos);
    r.stop();
    await running;
    assert.match(errors[0]!, /no message from the server/);
    await finishAndCheck(dir, cluster, "stall", await workload(cluster, 10));
    await cluster.sql("SELECT pg_drop_replication_slot('stall')");
    await rm(dir, { recursive: true });
  });

  test("--no-loop: a cut connection ends the run with an error", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-noloop-"));
    const r = receiver({ directory: dir, port: proxy.port, noLoop: true });
    const running = r.run().then(
      () => undefined,
      (e: unknown) => e,
    );
    await new Promise((resolve) => r.once("streaming", resolve));
    proxy.cutAll();
    const error = await running;
    assert.ok(error instanceof Error, "the run should fail");
    await rm(dir, { recursive: true });
  });
});

describe("primary restart", () => {
  for (const mode of ["fast", "immediate"] as const) {
    test(`${mode} shutdown and start: reconnect and resume with no gap`, async () => {
      const dir = await mkdtemp(join(tmpdir(), `pgwal-restart-${mode}-`));
      const slot = `restart_${mode}`;
      await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
      const r = receiver({ directory: dir, slot });
      let streams = 0;
      r.on("streaming", () => streams++);
      const running = r.run();
      await waitFor("streaming", () => streams === 1);
      await workload(cluster, 3000);
      await cluster.restart(mode);
      await waitFor("the receiver to come back", () => streams >= 2, 60_000);
      const endpos = await workload(cluster, 3000);
      await waitFor("streaming to catch up", () => r.positions.written >= endpos);
      const flushedBeforeStop = r.positions.flushed;
      r.stop();
      assert.deepEqual(await running, { reason: "stopped" });
      const restart = (await slotRestart(cluster, slot))!;
      assert.ok(restart >= flushedBeforeStop, "the final status update reached the server");
      await assertArchiveCovers(dir, cluster, restart);
      await finishAndCheck(dir, cluster, slot, await workload(cluster, 10));
      await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
      await rm(dir, { recursive: true });
    });
  }
});

describe("disk faults", () => {
  test("disk full (tmpfs): progress stops at what is on disk, then resumes with no gap once space is freed", async (t) => {
    if (process.getuid?.() !== 0) return t.skip("mounting a tmpfs needs root");
    const mountPoint = await mkdtemp(join(tmpdir(), "pgwal-tmpfs-"));
    try {
      await runCommand("mount", ["-t", "tmpfs", "-o", "size=5m,mode=0700", "tmpfs", mountPoint]);
    } catch (error) {
      return t.skip(`cannot mount a tmpfs here: ${String(error)}`);
    }
    try {
      const dir = join(mountPoint, "archive");
      await mkdir(dir, { mode: 0o700 });
      // A fresh checkpoint puts the new slot near the end of WAL: the runs below start at most a
      // segment or two back, far from filling the 5 MB tmpfs before the workload does.
      await cluster.sql("CHECKPOINT");
      await cluster.sql("SELECT pg_create_physical_replication_slot('full', true)");
      // Seed the archive first, so that the slot sits at a position pgwal reported: a physical slot
      // is created at the last checkpoint's redo position, and before PostgreSQL 15 (no
      // READ_REPLICATION_SLOT) a run on an empty archive starts at the server's position instead,
      // so a slot nobody has moved yet may point below the archive's first segment.
      await receiver({ directory: dir, slot: "full", endpos: await workload(cluster, 10) }).run();
      const r = receiver({ directory: dir, slot: "full", statusIntervalSeconds: 1 });
      const errors: unknown[] = [];
      r.on("disconnected", (e) => errors.push(e.error));
      const running = r.run();
      try {
        await new Promise((resolve) => r.once("streaming", resolve));
        await workload(cluster, 30_000); // ~14 MB of WAL: far more than 5 MB
        await waitFor("ENOSPC", () => errors.length >= 1);
        const storageError = errors.find((e) => e instanceof StorageError) as StorageError | undefined;
        assert.ok(storageError, `expected a StorageError, got ${errors.map(String).join("; ")}`);
        assert.equal(storageError.errno, "ENOSPC");
        assert.match(storageError.message, /No space left on device|ENOSPC/);
        // The server must not have been told about WAL that never reached the disk.
        const restart = (await slotRestart(cluster, "full"))!;
        await assertArchiveCovers(dir, cluster, restart);
        await assertCompleteSegmentsMatchServer(dir, cluster);
        // Free space: pgwal resumes by itself and catches up.
        await runCommand("mount", ["-o", "remount,size=128m", mountPoint]);
        const endpos = await workload(cluster, 100);
        await waitFor("catch-up after space was freed", () => r.positions.written >= endpos, 60_000);
      } finally {
        // Also after a failed check: a receiver left retrying would keep this test file from ending.
        r.stop();
      }
      assert.deepEqual(await running, { reason: "stopped" });
      await finishAndCheck(dir, cluster, "full", await workload(cluster, 10));
      await cluster.sql("SELECT pg_drop_replication_slot('full')");
    } finally {
      await runCommand("umount", [mountPoint]).catch(() => undefined);
      await rm(mountPoint, { recursive: true, force: true });
    }
  });

  test("slow disk: memory stays bounded and the server sees the real flush position", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-slow-"));
    await cluster.sql("SELECT pg_create_physical_replication_slot('slow', true)");
    // Every write and fsync takes 20 ms longer: the disk is much slower than the network.
    const slow: WalFileSystem = {
      ...nodeFileSystem,
      async open(path, flags, mode) {
        const handle = await nodeFileSystem.open(path, flags, mode);
        return new Proxy(handle, {
          get(target, prop, receiverArg) {
            const value = Reflect.get(target, prop, receiverArg);
            if (typeof value !== "function") return value;
            if (prop === "writev" || prop === "write" || prop === "sync" || prop === "datasync") {
              return async (...args: unknown[]) => {
                await sleep(20);
                return (value as (...a: unknown[]) => unknown).apply(target, args);
              };
            }
            return (value as (...a: unknown[]) => unknown).bind(target);
          },
        });
      },
    };
    await workload(cluster, 60_000); // ~28 MB waiting on the server
    const r = receiver({
      directory: dir,
      slot: "slow",
      fileSystem: slow,
      statusIntervalSeconds: 1,
      highWaterBytes: 4 * 1024 * 1024,
    });
    let maxQueued = 0;
    // Before pgwal reports anything the slot sits where it was created.
    let maxFlushedSeen = (await slotRestart(cluster, "slow"))!;
    r.on("flushed", (e) => {
      maxFlushedSeen = maxLsn(e.lsn, maxFlushedSeen);
    });
    const endpos = await workload(cluster, 100);
    const running = r.run();
    const rssBefore = process.memoryUsage().rss;
    let maxRss = rssBefore;
    const sampler = setInterval(() => {
      const queued = (r as unknown as { connection?: { queuedBytes: number } }).connection?.queuedBytes ?? 0;
      maxQueued = Math.max(maxQueued, queued);
      maxRss = Math.max(maxRss, process.memoryUsage().rss);
    }, 5);
    let violations = 0;
    while (r.positions.written < endpos) {
      const restart = await slotRestart(cluster, "slow");
      if (restart !== undefined && restart > maxFlushedSeen && restart > 0n) violations++;
      await sleep(200);
    }
    clearInterval(sampler);
    r.stop();
    await running;
    assert.equal(violations, 0, "the server saw a flush position beyond what pgwal had fsynced");
    // Backpressure: bytes waiting in memory stay near the high-water mark (4 MiB) plus one socket read.
    assert.ok(maxQueued < 6 * 1024 * 1024, `queued up to ${maxQueued} bytes`);
    // And the process as a whole: ~28 MB of backlog on the server, far less growth here.
    const growthMiB = (maxRss - rssBefore) / 1048576;
    assert.ok(growthMiB < 24, `RSS grew by ${growthMiB.toFixed(1)} MiB while the disk was slow`);
    await finishAndCheck(dir, cluster, "slow", await workload(cluster, 10));
    await cluster.sql("SELECT pg_drop_replication_slot('slow')");
    await rm(dir, { recursive: true });
  });
});

describe("server-side history", () => {
  test("WAL removed on the server: a clear, permanent error that says how to recover", async () => {
    const small = await PgCluster.start({
      name: "faults-recycle",
      walSegmentSizeMb: 1,
      settings: { wal_keep_size: 0, max_wal_size: "32MB", min_wal_size: "4MB" },
    });
    const dir = await mkdtemp(join(tmpdir(), "pgwal-removed-"));
    try {
      const first = receiver({ directory: dir, port: small.port, endpos: await workload(small, 100) });
      await first.run();
      for (let i = 0; i < 6; i++) {
        await workload(small, 20_000);
        await small.sql("CHECKPOINT");
      }
      const error = await receiver({ directory: dir, port: small.port })
        .run()
        .catch((e: unknown) => e);
      assert.ok(error instanceof ArchiveError, String(error));
      assert.match(error.message, /has already been removed/);
      assert.match(error.message, /gap/);
      assert.match(error.message, /base backup/);
    } finally {
      await small.destroy();
      await rm(dir, { recursive: true });
    }
  });

  test("timeline switch under load: old primary, then the promoted standby (several hosts)", async () => {
    const primary = await PgCluster.start({
      name: "faults-ha",
      walSegmentSizeMb: 1,
      settings: { wal_keep_size: "256MB" },
    });
    const standby = await primary.createStandby({ name: "faults-ha-standby" });
    const dir = await mkdtemp(join(tmpdir(), "pgwal-ha-"));
    try {
      const r = new WalReceiver({
        connection: resolveConnectionSettings({
          overrides: {
            host: "127.0.0.1,127.0.0.1",
            port: `${primary.port},${standby.port}`,
            user: TEST_USERS.trust.name,
            sslmode: "disable",
          },
          forced: { replication: "true" },
          env: {},
        }),
        directory: dir,
        logger: silentLogger,
        reconnectDelayMs: { initial: 100, max: 400 },
      });
      const timelines: number[] = [];
      r.on("timeline", (e) => timelines.push(e.to));
      const running = r.run();
      await new Promise((resolve) => r.once("streaming", resolve));
      let writing = true;
      const load = (async () => {
        while (writing) await workload(primary, 1500).catch(() => undefined);
      })();
      await sleep(1500);
      writing = false;
      await load;
      await primary.stop("fast"); // a clean shutdown hands all WAL to the standby first
      await standby.promote();
      const endpos = await workload(standby, 5000);
      await waitFor(
        "streaming from the new primary",
        () => r.positions.timeline === 2 && r.positions.written >= endpos,
        60_000,
      );
      r.stop();
      await running;
      assert.deepEqual(timelines, [2]);
      const summary = await listArchive(dir);
      assert.deepEqual(summary.history, ["00000002.history"]);
      assert.equal(
        (await readFile(join(dir, "00000002.history"))).toString(),
        (await readFile(standby.walPath("00000002.history"))).toString(),
      );
      await assertCompleteSegmentsMatchServer(dir, standby);
      const onTimeline2 = summary.partial.find((n) => n.startsWith("00000002"))!;
      await assertPartialMatchesServer(dir, onTimeline2, standby, offsetIn(endpos, standby.walSegmentSize));
      assert.ok(formatLsn(endpos));
    } finally {
      await standby.destroy();
      await primary.destroy();
      await rm(dir, { recursive: true });
    }
  });
});
