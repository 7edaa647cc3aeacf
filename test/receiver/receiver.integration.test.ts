import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readdir, rm, stat, truncate } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { ArchiveError, ServerError } from "../../src/errors.js";
import { formatLsn, type Lsn, parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { type ReceiverOptions, WalReceiver } from "../../src/receiver/receiver.js";
import type { CompressionSpec } from "../../src/wal/compression.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";
import {
  assertArchiveCovers,
  assertCompleteSegmentsMatchServer,
  assertPartialMatchesServer,
  listArchive,
  offsetIn,
} from "../support/archive-asserts.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";

let cluster: PgCluster;

before(async () => {
  cluster = await startSharedCluster({
    name: "receiver",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "256MB" },
  });
});

async function tempArchive(): Promise<string> {
  return mkdtemp(join(tmpdir(), "pgwal-archive-"));
}

function receiverFor(
  server: PgCluster,
  options: Partial<ReceiverOptions> & { directory: string },
): WalReceiver {
  return new WalReceiver({
    connection: resolveConnectionSettings({
      overrides: {
        host: "127.0.0.1",
        port: String(server.port),
        user: TEST_USERS.trust.name,
        sslmode: "disable",
      },
      forced: { replication: "true" },
      env: {},
    }),
    logger: silentLogger,
    reconnectDelayMs: { initial: 100, max: 500 },
    ...options,
  });
}

async function createSlot(server: PgCluster, name: string): Promise<void> {
  await server.sql(`SELECT pg_create_physical_replication_slot('${name}', true)`);
}

async function currentLsn(server: PgCluster): Promise<Lsn> {
  return parseLsn(await server.sql("SELECT pg_current_wal_lsn()"));
}

/** Makes WAL ending mid-segment (no switch), returns the position after it. */
async function someWal(server: PgCluster, rows = 2000): Promise<Lsn> {
  await server.sql(
    `CREATE TABLE IF NOT EXISTS t (id bigserial, pad text); INSERT INTO t (pad) SELECT repeat('w', 300) FROM generate_series(1, ${rows});`,
  );
  return currentLsn(server);
}

describe("streaming into an archive", () => {
  for (const compression of [
    { method: "none" },
    { method: "gzip", level: 1 },
    { method: "lz4" },
    // zstd is in node:zlib from Node.js 22.15 (CI runs the suite on 22, 24 and 26 too).
    ...(zstdAvailable() ? [{ method: "zstd", level: 1 }] : []),
  ] as CompressionSpec[]) {
    test(`complete segments are byte-identical to pg_wal (${compression.method})`, async () => {
      const dir = await tempArchive();
      const slot = `s_${compression.method}`;
      await createSlot(cluster, slot);
      // Streaming starts before the WAL is made: before PostgreSQL 15 (no READ_REPLICATION_SLOT)
      // an empty archive starts at the server's position, as with pg_receivewal.
      const receiver = receiverFor(cluster, { directory: dir, slot, compression });
      const segments: string[] = [];
      receiver.on("segment", (e) => segments.push(e.walFileName));
      const running = receiver.run();
      await new Promise((resolve) => receiver.once("streaming", resolve));
      await cluster.generateWal(3);
      const endpos = await someWal(cluster);
      while (receiver.positions.written < endpos) await sleep(20);
      receiver.stop();
      assert.deepEqual(await running, { reason: "stopped" });
      const summary = await assertCompleteSegmentsMatchServer(dir, cluster);
      assert.ok(summary.complete.length >= 3, `only ${summary.complete.length} complete segments`);
      assert.equal(summary.partial.length, 1);
      assert.deepEqual(
        summary.complete.map((n) => n.slice(0, 24)),
        segments,
      );
      assert.ok(receiver.positions.flushed >= endpos);
      await assertPartialMatchesServer(
        dir,
        summary.partial[0]!,
        cluster,
        offsetIn(endpos, cluster.walSegmentSize),
      );
      // Files are 0600 (the server's data directory does not allow group access).
      for (const name of await readdir(dir))
        assert.equal((await stat(join(dir, name))).mode & 0o777, 0o600, name);
      await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
      await rm(dir, { recursive: true });
    });
  }

  test("the slot never passes what pgwal has fsynced", async () => {
    const dir = await tempArchive();
    await createSlot(cluster, "s_flush");
    const receiver = receiverFor(cluster, { directory: dir, slot: "s_flush", statusIntervalSeconds: 1 });
    // Before pgwal reports anything, the slot sits where it was created.
    let flushed = parseLsn(
      await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 's_flush'"),
    );
    receiver.on("flushed", (e) => {
      flushed = e.lsn;
    });
    const running = receiver.run();
    const samples: { restart: Lsn; flushedThen: Lsn }[] = [];
    for (let i = 0; i < 12; i++) {
      await someWal(cluster, 1500);
      const seenBefore = flushed;
      const restart = await cluster.sql(
        "SELECT r.flush_lsn || ' ' || s.restart_lsn FROM pg_replication_slots s LEFT JOIN pg_stat_replication r ON r.pid = s.active_pid WHERE slot_name = 's_flush'",
      );
      const flushedAfter = flushed;
      const [flushLsn, restartLsn] = restart.split(" ");
      for (const text of [flushLsn, restartLsn]) {
        if (!text) continue;
        const lsn = parseLsn(text);
        // The server can only know a position we reported, and we report only what was fsynced.
        assert.ok(
          lsn <= flushedAfter,
          `server saw ${text}, pgwal had fsynced only ${formatLsn(flushedAfter)}`,
        );
        samples.push({ restart: lsn, flushedThen: seenBefore });
      }
      await sleep(300);
    }
    receiver.stop();
    assert.deepEqual(await running, { reason: "stopped" });
    assert.ok(
      samples.some((s) => s.restart > 0n),
      "the slot never advanced",
    );
    // The final status update on stop reports everything written as flushed.
    const finalRestart = parseLsn(
      await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 's_flush'"),
    );
    assert.equal(finalRestart, receiver.positions.flushed);
    await cluster.sql("SELECT pg_drop_replication_slot('s_flush')");
    await rm(dir, { recursive: true });
  });

  test("--synchronous: a commit returns only after pgwal has flushed it", async () => {
    const dir = await tempArchive();
    await createSlot(cluster, "s_sync");
    const receiver = new WalReceiver({
      connection: resolveConnectionSettings({
        overrides: {
          host: "127.0.0.1",
          port: String(cluster.port),
          user: TEST_USERS.trust.name,
          sslmode: "disable",
          application_name: "pgwal_sync",
        },
        forced: { replication: "true" },
        env: {},
      }),
      directory: dir,
      slot: "s_sync",
      synchronous: true,
      statusIntervalSeconds: 10,
      logger: silentLogger,
    });
    const running = receiver.run();
    await cluster.sql("ALTER SYSTEM SET synchronous_standby_names = 'pgwal_sync'; SELECT pg_reload_conf();");
    try {
      // Wait until the server counts pgwal as its synchronous standby.
      for (let i = 0; i < 100; i++) {
        if (
          (await cluster.sql(
            "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pgwal_sync'",
          )) === "sync"
        )
          break;
        await sleep(100);
      }
      for (let i = 0; i < 5; i++) {
        const committed = parseLsn(
          await cluster.sql(
            `CREATE TABLE IF NOT EXISTS sync_t (i int); INSERT INTO sync_t VALUES (${i}); SELECT pg_current_wal_lsn();`,
          ),
        );
        // The INSERT's commit record ends at or before `committed`; it returned, so pgwal must have it durable.
        const flushedNow = receiver.positions.flushed;
        const commitEnd = parseLsn(
          await cluster.sql(
            "SELECT flush_lsn FROM pg_stat_replication WHERE application_name = 'pgwal_sync'",
          ),
        );
        assert.ok(
          commitEnd <= flushedNow,
          `server saw flush ${formatLsn(commitEnd)} beyond pgwal's ${formatLsn(flushedNow)}`,
        );
        assert.ok(flushedNow > 0n && committed > 0n);
      }
    } finally {
      await cluster.sql("ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();");
      receiver.stop();
      await running;
    }
    await cluster.sql("SELECT pg_drop_replication_slot('s_sync')");
    await rm(dir, { recursive: true });
  });
});

describe("restarting on an existing archive", () => {
  test("after a clean stop, and with a short .partial, it resumes with no gap", async () => {
    const dir = await tempArchive();
    await createSlot(cluster, "s_resume");
    await cluster.generateWal(2);
    const first = receiverFor(cluster, { directory: dir, slot: "s_resume", endpos: await someWal(cluster) });
    assert.deepEqual(await first.run(), { reason: "endpos" });
    const before = await listArchive(dir);
    assert.equal(before.partial.length, 1);
    // A crash during pre-padding leaves a short .partial: pgwal re-pads it (pg_receivewal would die).
    await truncate(join(dir, before.partial[0]!), 12345);
    await cluster.generateWal(2);
    const endpos = await someWal(cluster);
    const second = receiverFor(cluster, { directory: dir, slot: "s_resume", endpos });
    assert.deepEqual(await second.run(), { reason: "endpos" });
    const after = await assertCompleteSegmentsMatchServer(dir, cluster);
    assert.ok(
      after.complete.includes(before.partial[0]!.replace(".partial", "")),
      "the partial segment was completed",
    );
    assert.equal(after.partial.length, 1);
    await assertPartialMatchesServer(
      dir,
      after.partial[0]!,
      cluster,
      offsetIn(endpos, cluster.walSegmentSize),
    );
    await cluster.sql("SELECT pg_drop_replication_slot('s_resume')");
    await rm(dir, { recursive: true });
  });

  test("after kill -9 at random moments, nothing is lost", async () => {
    const dir = await tempArchive();
    await createSlot(cluster, "s_kill");
    // Until pgwal reports a flush, the slot sits where it was created: nothing to check yet.
    const created = await cluster.sql(
      "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 's_kill'",
    );
    // Seed the archive first: before PostgreSQL 15 a run on an empty archive starts at the server's
    // position, so a child killed before writing anything would make the next one skip WAL.
    await receiverFor(cluster, { directory: dir, slot: "s_kill", endpos: await someWal(cluster, 10) }).run();
    const child = join(fileURLToPath(new URL(".", import.meta.url)), "../support/receiver-child.js");
    const options = JSON.stringify({
      host: "127.0.0.1",
      port: cluster.port,
      user: TEST_USERS.trust.name,
      directory: dir,
      slot: "s_kill",
    });
    const workload = (async () => {
      for (let i = 0; i < 8; i++) await someWal(cluster, 3000);
    })();
    for (let kill = 0; kill < 6; kill++) {
      const proc: ChildProcess = spawn(process.execPath, [child, options], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      await sleep(300 + Math.floor(Math.random() * 700));
      proc.kill("SIGKILL");
      await new Promise((resolve) => proc.once("exit", resolve));
      // What the server was told is flushed must be in the archive.
      const restart = await cluster.sql(
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 's_kill'",
      );
      if (restart !== created) await assertArchiveCovers(dir, cluster, parseLsn(restart));
    }
    await workload;
    const endpos = await someWal(cluster, 100);
    const last = receiverFor(cluster, { directory: dir, slot: "s_kill", endpos });
    assert.deepEqual(await last.run(), { reason: "endpos" });
    const summary = await assertCompleteSegmentsMatchServer(dir, cluster);
    assert.ok(summary.complete.length >= 3);
    await assertPartialMatchesServer(
      dir,
      summary.partial[0]!,
      cluster,
      offsetIn(endpos, cluster.walSegmentSize),
    );
    await cluster.sql("SELECT pg_drop_replication_slot('s_kill')");
    await rm(dir, { recursive: true });
  });

  test("an archive of another cluster is refused", async () => {
    const dir = await tempArchive();
    const first = receiverFor(cluster, { directory: dir, endpos: await someWal(cluster, 10) });
    await first.run();
    const other = await startSharedCluster({ name: "receiver-other", walSegmentSizeMb: 1 });
    const error = await receiverFor(other, { directory: dir })
      .run()
      .catch((e: unknown) => e);
    assert.ok(error instanceof ArchiveError, String(error));
    assert.match(error.message, /holds WAL of database system \d+ .* system identifier is \d+/);
    await rm(dir, { recursive: true });
  });
});

describe("lifecycle", () => {
  test("--endpos already reached exits at once", async () => {
    const dir = await tempArchive();
    const receiver = receiverFor(cluster, { directory: dir, endpos: 1n });
    assert.deepEqual(await receiver.run(), { reason: "endpos" });
    await rm(dir, { recursive: true });
  });

  test("a missing slot is a permanent error", async () => {
    const dir = await tempArchive();
    const error = await receiverFor(cluster, { directory: dir, slot: "no_such_slot" })
      .run()
      .catch((e: unknown) => e);
    assert.ok(error instanceof ServerError, String(error));
    assert.match(error.message, /replication slot "no_such_slot" does not exist/);
    await rm(dir, { recursive: true });
  });

  test("--no-loop: a lost connection ends the run with an error", async () => {
    const dir = await tempArchive();
    const receiver = receiverFor(cluster, { directory: dir, noLoop: true });
    const running = receiver.run().catch((e: unknown) => e);
    await new Promise((resolve) => receiver.once("streaming", resolve));
    await cluster.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_replication");
    const error = await running;
    assert.ok(error instanceof Error, String(error));
    await rm(dir, { recursive: true });
  });

  test("without --no-loop it reconnects and resumes with no gap", async () => {
    const dir = await tempArchive();
    await createSlot(cluster, "s_loop");
    const receiver = receiverFor(cluster, { directory: dir, slot: "s_loop" });
    let disconnects = 0;
    receiver.on("disconnected", () => disconnects++);
    const running = receiver.run();
    await new Promise((resolve) => receiver.once("streaming", resolve));
    await someWal(cluster, 3000);
    await cluster.sql(
      "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 's_loop'",
    );
    await new Promise((resolve) => receiver.once("streaming", resolve));
    const endpos = await someWal(cluster, 3000);
    while (receiver.positions.written < endpos) await sleep(50);
    receiver.stop();
    assert.deepEqual(await running, { reason: "stopped" });
    assert.equal(disconnects, 1);
    const summary = await assertCompleteSegmentsMatchServer(dir, cluster);
    await assertPartialMatchesServer(
      dir,
      summary.partial[0]!,
      cluster,
      offsetIn(endpos, cluster.walSegmentSize),
    );
    await cluster.sql("SELECT pg_drop_replication_slot('s_loop')");
    await rm(dir, { recursive: true });
  });
});

describe("timeline switch", () => {
  test("streaming from a standby follows its promotion and writes the history file", async () => {
    const standby = await cluster.createStandby({ name: "receiver-standby" });
    const dir = await tempArchive();
    try {
      await someWal(cluster, 2000);
      const receiver = receiverFor(standby, { directory: dir });
      const switches: { from: number; to: number }[] = [];
      receiver.on("timeline", (e) => switches.push({ from: e.from, to: e.to }));
      const running = receiver.run();
      await new Promise((resolve) => receiver.once("streaming", resolve));
      await sleep(500);
      await standby.promote();
      await standby.sql("CREATE TABLE after_promote AS SELECT g FROM generate_series(1, 50000) g");
      const endpos = parseLsn(await standby.sql("SELECT pg_current_wal_lsn()"));
      while (receiver.positions.timeline !== 2 || receiver.positions.written < endpos) await sleep(50);
      receiver.stop();
      await running;
      assert.deepEqual(switches, [{ from: 1, to: 2 }]);
      const summary = await listArchive(dir);
      assert.deepEqual(summary.history, ["00000002.history"]);
      assert.ok(
        summary.partial.some((n) => n.startsWith("00000001")),
        "the old timeline's last segment stays .partial",
      );
      assert.ok(summary.partial.some((n) => n.startsWith("00000002")));
      const onTimeline2 = summary.partial.find((n) => n.startsWith("00000002"))!;
      await assertPartialMatchesServer(dir, onTimeline2, standby, offsetIn(endpos, standby.walSegmentSize));
    } finally {
      await standby.destroy();
      await rm(dir, { recursive: true });
    }
  });
});
