/**
 * Every way of connecting streams on the read ring: message bodies are views of one reused block
 * of memory (plus a few reused spares), not of a fresh buffer per socket read or per assembled
 * message. Counting the distinct ArrayBuffers behind the CopyData bodies of tens of MiB of WAL
 * tells the two apart: the copying 'data' path shows hundreds, the ring a handful. The streamed
 * bytes are compared with the server's segments, with a consumer slow enough to fill the ring.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { dropSlot, startReplication } from "../../src/connection/commands.js";
import { PgConnection } from "../../src/connection/connection.js";
import { type ConnParams, resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { ConnectionError, ServerError } from "../../src/errors.js";
import { type Lsn, parseLsn, segmentNumberOf, segmentStartOf } from "../../src/lsn.js";
import { parseXLogData, XLOG_DATA } from "../../src/protocol/replication.js";
import { walFileName } from "../../src/wal/names.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";

/** Whole segments streamed per connection. */
const SEGMENTS = 3;
/** More than this many distinct memory blocks means bodies are not coming from reused memory. */
const MAX_DISTINCT_BUFFERS = 16;

let cluster: PgCluster;
let start: Lsn;
let end: Lsn;
let expected: Buffer;

before(async () => {
  cluster = await startSharedCluster({ name: "read-path" });
  await cluster.sql("CHECKPOINT");
  // One slot per connection, all created before the WAL: each one streams the same bytes.
  await cluster.sql(
    ["disable", "prefer_n", "allow", "unix", "require", "require_slow", "require_killed"]
      .map((name) => `SELECT pg_create_physical_replication_slot('rp_${name}', true);`)
      .join("\n"),
  );
  const segmentSize = cluster.walSegmentSize;
  start = segmentStartOf(
    parseLsn(await cluster.sql("SELECT min(restart_lsn) FROM pg_replication_slots")),
    segmentSize,
  );
  let insert = start;
  while (insert - start < BigInt((SEGMENTS + 1) * segmentSize)) {
    insert = parseLsn(await cluster.generateWal(SEGMENTS * 16));
  }
  end = start + BigInt(SEGMENTS * segmentSize);
  const parts: Buffer[] = [];
  for (let i = 0; i < SEGMENTS; i++) {
    const segment = segmentNumberOf(start, segmentSize) + BigInt(i);
    parts.push(await readFile(cluster.walPath(walFileName(1, segment, segmentSize))));
  }
  expected = Buffer.concat(parts);
});

after(async () => {
  // Leave the server as the tests found it (one test turns TLS off).
  await setSsl(true);
});

async function setSsl(on: boolean): Promise<void> {
  await cluster.sql(`ALTER SYSTEM SET ssl = ${on ? "on" : "off"}; SELECT pg_reload_conf();`);
  for (let i = 0; i < 100 && (await cluster.sql("SHOW ssl")) !== (on ? "on" : "off"); i++) await sleep(50);
}

function connect(extra: ConnParams): Promise<PgConnection> {
  return PgConnection.connect(
    resolveConnectionSettings({
      overrides: {
        host: "127.0.0.1",
        port: String(cluster.port),
        user: TEST_USERS.trust.name,
        dbname: "replication",
        sslrootcert: "/nonexistent/root.crt",
        ...extra,
      },
      forced: { replication: "true" },
      env: {},
      homeDir: "/nonexistent",
    }),
  );
}

/**
 * Streams [start, end) from `slot`, checks the bytes against pg_wal, and returns how many distinct
 * ArrayBuffers the message bodies lived in. `pauseEvery` > 0 makes the consumer sleep every that
 * many batches, so the socket outpaces it and the ring fills up.
 */
async function streamAndCount(conn: PgConnection, slot: string, pauseEvery = 0): Promise<number> {
  const memory = new Set<ArrayBufferLike>();
  const received = Buffer.alloc(expected.length);
  let position = start;
  let batches = 0;
  await startReplication(conn, { slot, start, timeline: 1 });
  while (position < end) {
    const batch = await conn.takeCopyData();
    assert.ok(batch.length > 0, "the stream ended early");
    for (const payload of batch) {
      memory.add(payload.buffer);
      if (payload[0] !== XLOG_DATA || position >= end) continue;
      const message = parseXLogData(payload);
      assert.equal(message.start, position, "WAL is contiguous");
      const take = Math.min(message.data.length, Number(end - position));
      message.data.copy(received, Number(position - start), 0, take);
      position += BigInt(take);
    }
    if (pauseEvery > 0 && ++batches % pauseEvery === 0) await sleep(20);
  }
  conn.sendCopyDone();
  await conn.finishCopy();
  assert.ok(received.equals(expected), "streamed WAL differs from the server's segments");
  return memory.size;
}

async function assertStreamsOnRing(
  extra: ConnParams,
  slot: string,
  expectTls: boolean,
  pauseEvery = 0,
): Promise<void> {
  const conn = await connect(extra);
  try {
    assert.equal(conn.usesTls, expectTls);
    const distinct = await streamAndCount(conn, slot, pauseEvery);
    assert.ok(
      distinct <= MAX_DISTINCT_BUFFERS,
      `${SEGMENTS * 16} MiB of WAL arrived in ${distinct} distinct buffers: not read into the ring`,
    );
    await dropSlot(conn, slot);
  } finally {
    await conn.close();
  }
}

describe("every connection streams through the read ring", () => {
  test("sslmode=disable over TCP", () => assertStreamsOnRing({ sslmode: "disable" }, "rp_disable", false));

  test("sslmode=allow (plaintext first)", () => assertStreamsOnRing({ sslmode: "allow" }, "rp_allow", false));

  test("a Unix-domain socket", () =>
    assertStreamsOnRing({ host: cluster.socketDir, user: TEST_USERS.superuser.name }, "rp_unix", false));

  test("TLS (sslmode=require)", () => assertStreamsOnRing({ sslmode: "require" }, "rp_require", true));

  test("TLS with a consumer slower than the socket (the ring fills and reading pauses)", () =>
    assertStreamsOnRing({ sslmode: "require" }, "rp_require_slow", true, 3));

  test("the default sslmode (prefer) against a server without TLS: plaintext after an 'N'", async () => {
    await setSsl(false);
    try {
      await assertStreamsOnRing({}, "rp_prefer_n", false);
    } finally {
      await setSsl(true);
    }
  });
});

test("a TLS stream on the ring ends with the server's error when its walsender is terminated", {
  timeout: 60_000,
}, async () => {
  const conn = await connect({ sslmode: "require" });
  try {
    assert.equal(conn.usesTls, true);
    await startReplication(conn, { slot: "rp_require_killed", start, timeline: 1 });
    assert.ok((await conn.takeCopyData()).length > 0);
    await cluster.sql(`SELECT pg_terminate_backend(${conn.processId})`);
    const outcome = await (async () => {
      for (;;) {
        if ((await conn.takeCopyData()).length === 0) return conn.finishCopy();
      }
    })().then(
      () => new Error("the stream went on after its walsender was terminated"),
      (error: unknown) => error,
    );
    assert.ok(
      outcome instanceof ServerError || outcome instanceof ConnectionError,
      `expected the server's FATAL or a closed connection, got ${String(outcome)}`,
    );
  } finally {
    await conn.close();
  }
});
