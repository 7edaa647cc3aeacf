/**
 * Storage failures the receiver must not paper over: a failed fsync (file or directory) and a
 * failure while stopping. Faults are injected through the storage's file-system layer; the
 * server is real, so what the slot was told is what PostgreSQL really recorded.
 */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { StorageError } from "../../src/errors.js";
import { formatLsn, type Lsn, parseLsn, segmentStartLsn } from "../../src/lsn.js";
import type { ReceiverLogger } from "../../src/receiver/logger.js";
import { type ReceiverOptions, WalReceiver } from "../../src/receiver/receiver.js";
import { errnoError, nodeFileSystem, type WalFileSystem } from "../../src/wal/fsync.js";
import { parseWalFileName } from "../../src/wal/names.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { waitFor } from "../support/wait-for.js";

let cluster: PgCluster;

before(async () => {
  cluster = await startSharedCluster({
    name: "storage-failures",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "128MB" },
  });
});

function receiverFor(options: Partial<ReceiverOptions> & { directory: string }): WalReceiver {
  return new WalReceiver({
    connection: resolveConnectionSettings({
      overrides: {
        host: "127.0.0.1",
        port: String(cluster.port),
        user: TEST_USERS.trust.name,
        sslmode: "disable",
      },
      forced: { replication: "true" },
      env: {},
    }),
    logger: recordingLogger([]),
    reconnectDelayMs: { initial: 100, max: 300 },
    ...options,
  });
}

function recordingLogger(lines: string[]): ReceiverLogger {
  const record = (_fields: Record<string, unknown>, message: string) => void lines.push(message);
  return { debug: record, info: record, warn: record, error: record };
}

async function slotRestart(slot: string): Promise<Lsn> {
  return parseLsn(
    await cluster.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`),
  );
}

async function someWal(rows: number): Promise<void> {
  await cluster.sql(
    `CREATE TABLE IF NOT EXISTS sf (id bigserial, pad text); INSERT INTO sf (pad) SELECT repeat('s', 300) FROM generate_series(1, ${rows});`,
  );
}

/** The run's outcome (its error, or `{ resolved }`), handled at once so a rejection is never unhandled. */
function outcomeOf(running: Promise<unknown>): Promise<unknown> {
  return running.then(
    (value) => ({ resolved: value }),
    (error: unknown) => error,
  );
}

/** Settles with the outcome, or "still running" after `ms`. */
async function outcomeWithin(outcome: Promise<unknown>, ms: number): Promise<unknown> {
  return Promise.race([outcome, sleep(ms, "still running")]);
}

describe("storage failures", () => {
  test("a failed directory fsync after a segment's rename: the slot never passes the segment, the run stops", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-fsyncfail-"));
    await cluster.sql("SELECT pg_create_physical_replication_slot('dirfsync', true)");
    let renamedSegment: string | undefined;
    let failedOnce = false;
    // The first directory fsync after a segment's rename fails; any later one "succeeds", as a
    // retried fsync does after the kernel dropped the dirty state: it must not be trusted.
    const failing: WalFileSystem = {
      ...nodeFileSystem,
      async rename(from, to) {
        await nodeFileSystem.rename(from, to);
        if (renamedSegment === undefined && parseWalFileName(basename(to), cluster.walSegmentSize))
          renamedSegment = basename(to);
      },
      async fsyncDirectory(path) {
        if (renamedSegment !== undefined && !failedOnce) {
          failedOnce = true;
          throw errnoError("EIO", "injected directory fsync failure");
        }
        await nodeFileSystem.fsyncDirectory(path);
      },
    };
    const receiver = receiverFor({
      directory: dir,
      slot: "dirfsync",
      fileSystem: failing,
      statusIntervalSeconds: 1,
    });
    const retries: unknown[] = [];
    receiver.on("disconnected", (event) => {
      if (event.retryInMs !== undefined) retries.push(event.error);
    });
    const running = outcomeOf(receiver.run());
    try {
      await new Promise((resolve) => receiver.once("streaming", resolve));
      for (let i = 0; i < 3; i++) await someWal(3000);
      await waitFor("a completed segment", () => (failedOnce ? true : undefined));
      // Give a (wrong) reconnect time to resume and report the renamed segment as flushed.
      await someWal(1000);
      const outcome = await outcomeWithin(running, 5000);
      const segment = parseWalFileName(renamedSegment!, cluster.walSegmentSize)!;
      const segmentEnd = segmentStartLsn(segment.segNo + 1n, cluster.walSegmentSize);
      const restart = await slotRestart("dirfsync");
      assert.ok(
        restart < segmentEnd,
        `the slot passed ${renamedSegment}, whose rename was never confirmed durable (restart_lsn ${formatLsn(restart)})`,
      );
      assert.ok(
        outcome instanceof StorageError,
        `the run must stop with the fsync error, got ${String(outcome)}`,
      );
      assert.equal(outcome.retryable, false);
      assert.match(outcome.message, /fsync/);
      assert.deepEqual(retries, []);
    } finally {
      receiver.stop();
      await running;
      await cluster.sql("SELECT pg_drop_replication_slot('dirfsync')");
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("a storage failure while stopping ends the run with the error, not a clean stop", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-stopfail-"));
    let failClose = false;
    const failing: WalFileSystem = {
      ...nodeFileSystem,
      async open(path, flags, mode) {
        const handle = await nodeFileSystem.open(path, flags, mode);
        const close = handle.close.bind(handle);
        handle.close = async () => {
          await close();
          if (failClose) throw errnoError("EIO", "injected close failure");
        };
        return handle;
      },
    };
    const lines: string[] = [];
    const receiver = receiverFor({ directory: dir, fileSystem: failing, logger: recordingLogger(lines) });
    const running = outcomeOf(receiver.run());
    const { start } = await new Promise<{ start: Lsn }>((resolve) => receiver.once("streaming", resolve));
    await someWal(200);
    // A segment file is open (WAL written into it): stopping must close it.
    while (receiver.positions.written <= start) await sleep(20);
    failClose = true;
    receiver.stop();
    const outcome = await outcomeWithin(running, 10_000);
    assert.ok(outcome instanceof StorageError, `expected the close failure, got ${JSON.stringify(outcome)}`);
    assert.match(outcome.message, /injected close failure/);
    assert.deepEqual(
      lines.filter((line) => line.includes("reconnecting")),
      [],
    );
    await rm(dir, { recursive: true, force: true });
  });

  test("resuming from the archive first makes the file it resumes after, and its name, durable", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-resume-"));
    try {
      await someWal(500);
      const endpos = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
      assert.deepEqual(await receiverFor({ directory: dir, endpos }).run(), { reason: "endpos" });
      const newest = (await readdir(dir)).sort().at(-1)!;
      // The restart: what has been made durable by the time streaming starts (and flush is reported)?
      const log: string[] = [];
      const recording: WalFileSystem = {
        ...nodeFileSystem,
        async open(path, flags, mode) {
          const handle = await nodeFileSystem.open(path, flags, mode);
          const sync = handle.sync.bind(handle);
          handle.sync = async () => {
            await sync();
            log.push(`fsynced ${basename(path)}`);
          };
          return handle;
        },
        async fsyncDirectory(path) {
          await nodeFileSystem.fsyncDirectory(path);
          log.push("fsynced directory");
        },
      };
      const receiver = receiverFor({ directory: dir, fileSystem: recording });
      let atStreaming: string[] | undefined;
      receiver.once("streaming", () => {
        atStreaming = [...log];
        receiver.stop();
      });
      await receiver.run();
      assert.deepEqual(atStreaming, [`fsynced ${newest}`, "fsynced directory"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
