import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { WalReceiver } from "../../src/receiver/receiver.js";
import type { CompressionSpec } from "../../src/wal/compression.js";
import {
  assertCompleteSegmentsMatchServer,
  assertPartialMatchesServer,
  offsetIn,
} from "../support/archive-asserts.js";
import { startSharedCluster, TEST_USERS } from "../support/cluster.js";

// The default segment size, which the 1 MB tests elsewhere do not exercise.
const cluster = await startSharedCluster({ name: "segment-16mb" });

for (const compression of [{ method: "none" }, { method: "gzip" }] as CompressionSpec[]) {
  test(`16 MB segments stream byte-identical (${compression.method})`, async () => {
    assert.equal(cluster.walSegmentSize, 16 * 1024 * 1024);
    const slot = `s16_${compression.method}`;
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
    const dir = await mkdtemp(join(tmpdir(), "pgwal-16mb-"));
    const receiver = new WalReceiver({
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
      directory: dir,
      slot,
      compression,
      logger: silentLogger,
    });
    // Streaming starts first: before PostgreSQL 15 an empty archive starts at the server's position.
    const running = receiver.run();
    await new Promise((resolve) => receiver.once("streaming", resolve));
    await cluster.generateWal(40);
    const endpos = parseLsn(
      await cluster.sql(
        "INSERT INTO pgwal_wal_filler (payload) SELECT md5(g::text) FROM generate_series(1, 5000) g; SELECT pg_current_wal_lsn();",
      ),
    );
    while (receiver.positions.written < endpos) await sleep(20);
    receiver.stop();
    assert.deepEqual(await running, { reason: "stopped" });
    const summary = await assertCompleteSegmentsMatchServer(dir, cluster);
    assert.ok(summary.complete.length >= 2, `${summary.complete.length} complete segments`);
    await assertPartialMatchesServer(
      dir,
      summary.partial[0]!,
      cluster,
      offsetIn(endpos, cluster.walSegmentSize),
    );
    await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
    await rm(dir, { recursive: true });
  });
}
