/**
 * Restarting on a gzip/lz4 archive streams the open segment again from its start; the `.partial`
 * of the previous run is replaced only by a new stream that holds at least as much (see
 * test/wal/compressed-storage.test.ts for every step). Here: the real path end to end.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { type Lsn, parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { type ReceiverOptions, WalReceiver } from "../../src/receiver/receiver.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";
import {
  assertArchiveCovers,
  assertCompleteSegmentsMatchServer,
  assertPartialMatchesServer,
  offsetIn,
} from "../support/archive-asserts.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";

let cluster: PgCluster;

before(async () => {
  cluster = await startSharedCluster({
    name: "compressed-restart",
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
    logger: silentLogger,
    reconnectDelayMs: { initial: 100, max: 300 },
    ...options,
  });
}

async function someWal(rows: number): Promise<Lsn> {
  await cluster.sql(
    `CREATE TABLE IF NOT EXISTS cr (id bigserial, pad text); INSERT INTO cr (pad) SELECT repeat('c', 300) FROM generate_series(1, ${rows});`,
  );
  return parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
}

/** Streams until `endpos` is written, then stops as SIGTERM would. */
async function streamUntil(receiver: WalReceiver, makeWal: () => Promise<Lsn>): Promise<Lsn> {
  const running = receiver.run();
  await new Promise((resolve) => receiver.once("streaming", resolve));
  const endpos = await makeWal();
  while (receiver.positions.written < endpos) await sleep(20);
  receiver.stop();
  assert.deepEqual(await running, { reason: "stopped" });
  return endpos;
}

for (const method of ["gzip", "lz4", ...(zstdAvailable() ? ["zstd" as const] : [])] as const) {
  test(`${method}: restarts resume the open segment without losing what its .partial held`, async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-compressed-restart-"));
    const slot = `cr_${method}`;
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
    try {
      const options = { directory: dir, slot, compression: { method } };
      const first = await streamUntil(receiverFor(options), () => someWal(300));
      let summary = await assertCompleteSegmentsMatchServer(dir, cluster);
      await assertPartialMatchesServer(
        dir,
        summary.partial.at(-1)!,
        cluster,
        offsetIn(first, cluster.walSegmentSize),
      );
      // Two restarts: one with a little WAL (likely the same segment), one past a segment end.
      for (const rows of [50, 4000]) {
        const endpos = await streamUntil(receiverFor(options), () => someWal(rows));
        summary = await assertCompleteSegmentsMatchServer(dir, cluster); // also: no stray replacement file
        await assertPartialMatchesServer(
          dir,
          summary.partial.at(-1)!,
          cluster,
          offsetIn(endpos, cluster.walSegmentSize),
        );
        const restart = parseLsn(
          await cluster.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`),
        );
        await assertArchiveCovers(dir, cluster, restart);
      }
    } finally {
      await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
      await rm(dir, { recursive: true, force: true });
    }
  });
}
