/**
 * Power cuts at random moments (seeded) while pgwal receives with a slot into a power-cut-fs
 * directory (test/support/power-cut-fs.c): at each cut, pgwal and the file system die in the same
 * instant, and everything not fsynced is gone. Then every position pgwal reported flushed (its
 * "flushed" events, and the slot's restart_lsn, which is what the server believes) must be in the
 * durable state, byte-identical to the server's WAL. At the end pgwal resumes on what survived and
 * the archive has no gap. For plain, --synchronous, -Z gzip and -Z lz4 archives, and compressed
 * synchronous ones.
 *
 * Not in `npm test` (it takes minutes, needs root and libfuse3): `npm run test:powerloss`.
 * PGWAL_POWER_CUTS sets the cuts per variant, PGWAL_POWER_SEED replays a run.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { formatLsn, type Lsn, parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { WalReceiver } from "../../src/receiver/receiver.js";
import { parseArchiveFileName, parseWalFileName } from "../../src/wal/names.js";
import { assertArchiveCovers, assertPartialMatchesServer, listArchive } from "../support/archive-asserts.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { PowerCutFs } from "../support/power-cut-fs.js";

const CUTS = Number(process.env.PGWAL_POWER_CUTS ?? 12);
const SEED = Number(process.env.PGWAL_POWER_SEED ?? Date.now() % 2 ** 31);

interface Variant {
  name: string;
  slot: string;
  synchronous?: boolean;
  compression?: "gzip" | "lz4";
}

const VARIANTS: Variant[] = [
  { name: "plain", slot: "power_plain" },
  { name: "--synchronous", slot: "power_sync", synchronous: true },
  { name: "-Z gzip", slot: "power_gzip", compression: "gzip" },
  { name: "-Z lz4", slot: "power_lz4", compression: "lz4" },
  // A synchronous receiver fsyncs after every message, also while it re-streams its last segment.
  { name: "--synchronous -Z gzip", slot: "power_sync_gzip", synchronous: true, compression: "gzip" },
  { name: "--synchronous -Z lz4", slot: "power_sync_lz4", synchronous: true, compression: "lz4" },
];

const childScript = join(fileURLToPath(new URL(".", import.meta.url)), "../support/receiver-child.js");

let cluster: PgCluster;
before(async () => {
  cluster = await startSharedCluster({
    name: "power-loss",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "1GB" },
  });
});

/** mulberry32: a small seeded generator, so that a failing run can be replayed. */
function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

async function workload(rows: number): Promise<Lsn> {
  return parseLsn(
    await cluster.sql(
      `CREATE TABLE IF NOT EXISTS power (id bigserial, pad text); INSERT INTO power (pad) SELECT repeat('p', 400) FROM generate_series(1, ${rows}); SELECT pg_current_wal_lsn();`,
    ),
  );
}

async function slotRestart(slot: string): Promise<Lsn> {
  return parseLsn(
    await cluster.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`),
  );
}

/** A receiver in its own process; `onFlushed` sees every position it reports flushed. */
function startReceiver(
  variant: Variant,
  directory: string,
  onFlushed: (lsn: Lsn) => void,
  onError: (message: string) => void,
): { child: ChildProcess; streaming: Promise<void>; done: Promise<void> } {
  const options = JSON.stringify({
    host: "127.0.0.1",
    port: cluster.port,
    user: TEST_USERS.trust.name,
    directory,
    slot: variant.slot,
    synchronous: variant.synchronous,
    compression: variant.compression,
  });
  const child = spawn(process.execPath, [childScript, options], { stdio: ["ignore", "pipe", "inherit"] });
  const lines = createInterface({ input: child.stdout! });
  let onStreaming = (): void => {};
  const streaming = new Promise<void>((resolve) => {
    onStreaming = resolve;
  });
  lines.on("line", (line) => {
    const event = JSON.parse(line) as { event: string; lsn?: string; message?: string };
    if (event.event === "flushed") onFlushed(BigInt(event.lsn!));
    if (event.event === "error") onError(event.message ?? "");
    if (event.event === "streaming") onStreaming();
  });
  const done = new Promise<void>((resolve) => lines.once("close", () => resolve()));
  return { child, streaming, done };
}

/** The durable archive, name and size per file, for failure messages. */
async function describeArchive(directory: string): Promise<string> {
  const names = (await readdir(directory)).sort();
  const sizes = await Promise.all(names.map(async (name) => (await stat(join(directory, name))).size));
  return names.map((name, i) => `${name} (${sizes[i]} bytes)`).join(", ") || "(empty)";
}

/** Segment number of the archive file `name`. */
function segNoOf(name: string): bigint {
  const walName = parseArchiveFileName(name)!.walFileName;
  return parseWalFileName(walName, cluster.walSegmentSize)!.segNo;
}

/**
 * `directory` holds the server's WAL from `fromLsn`'s segment up to `toLsn`, byte for byte: every
 * segment in between, and the last one up to `toLsn`. Before the last, a segment under its
 * `.partial` name counts (a restore finds it there too) unless `completeBeforeLast`.
 */
async function assertHoldsWal(
  directory: string,
  fromLsn: Lsn,
  toLsn: Lsn,
  options: { completeBeforeLast: boolean },
): Promise<void> {
  // A cut while a compressed segment's replacement stream was catching up leaves its `.tmp`.
  await assertArchiveCovers(directory, cluster, toLsn, { allowReplacementInProgress: true });
  const { complete, partial } = await listArchive(directory, { allowReplacementInProgress: true });
  const size = BigInt(cluster.walSegmentSize);
  const lastSegNo = (toLsn - 1n) / size;
  for (let segNo = fromLsn / size; segNo <= lastSegNo; segNo++) {
    const upTo = segNo === lastSegNo ? Number(toLsn - segNo * size) : cluster.walSegmentSize;
    const partialAllowed = !options.completeBeforeLast || segNo === lastSegNo;
    const holder =
      complete.find((name) => segNoOf(name) === segNo) ??
      (partialAllowed ? partial.find((name) => segNoOf(name) === segNo) : undefined);
    assert.ok(
      holder,
      `no file holds segment ${segNo.toString(16)} (WAL up to ${formatLsn(toLsn)} must be there)`,
    );
    await assertPartialMatchesServer(directory, holder, cluster, upTo);
  }
}

describe(`power cuts (seed ${SEED}, PGWAL_POWER_SEED to replay)`, () => {
  const random = seededRandom(SEED);
  for (const variant of VARIANTS) {
    test(`${variant.name}: ${CUTS} power cuts lose nothing pgwal reported flushed`, {
      timeout: 10 * 60_000,
    }, async (t) => {
      const fs = await PowerCutFs.start(`power-${variant.slot}`);
      await cluster.sql(`SELECT pg_create_physical_replication_slot('${variant.slot}', true)`);
      const created = await slotRestart(variant.slot);
      /** The highest position pgwal ever reported flushed, over every run. */
      let claimed = 0n;
      const errors: string[] = [];
      let writing = true;
      // Bursts and pauses: the receiver reports flushes at segment ends and, when idle, mid-segment.
      const loadRandom = seededRandom(SEED + 1);
      const load = (async () => {
        while (writing) {
          await workload(50 + Math.floor(loadRandom() * 1500));
          await sleep(Math.floor(loadRandom() * 400));
        }
      })();
      try {
        for (let cut = 1; cut <= CUTS; cut++) {
          const receiver = startReceiver(
            variant,
            fs.mountPoint,
            (lsn) => {
              if (lsn > claimed) claimed = lsn;
            },
            (message) => errors.push(message),
          );
          // Every other cut lands just after the receiver starts streaming, while it re-streams its
          // last segment (which the run before filled further); the others while it starts, or
          // after its first status intervals (1 s), which fsync the open segment mid-way.
          const afterStreaming = cut % 2 === 0;
          const delayMs = Math.floor(
            afterStreaming ? random() * 100 : cut % 4 === 3 ? 100 + random() * 700 : 1000 + random() * 3000,
          );
          if (afterStreaming) await Promise.race([receiver.streaming, sleep(10_000)]);
          await sleep(delayMs);
          await fs.cutPower([receiver.child]);
          await receiver.done;
          const restart = await slotRestart(variant.slot);
          const mustHave = restart > claimed ? restart : claimed;
          t.diagnostic(
            `cut ${cut} ${delayMs} ms after ${afterStreaming ? "streaming began" : "start"}: reported flushed ` +
              `${formatLsn(claimed)}, slot at ${formatLsn(restart)}; durable: ${await describeArchive(fs.durableDir)}`,
          );
          if (mustHave > created) {
            try {
              await assertHoldsWal(fs.durableDir, created, mustHave, { completeBeforeLast: false });
            } catch (error) {
              throw new Error(
                `${variant.name}, seed ${SEED}, cut ${cut} ${delayMs} ms after ${afterStreaming ? "streaming began" : "start"}: WAL reported flushed up to ` +
                  `${formatLsn(claimed)} (slot restart_lsn ${formatLsn(restart)}) is not durable. ` +
                  `${(error as Error).message}\n  durable archive (kept in ${fs.durableDir}): ` +
                  `${await describeArchive(fs.durableDir)}` +
                  (errors.length > 0 ? `\n  receiver errors: ${errors.join("; ")}` : ""),
                { cause: error },
              );
            }
          }
          await fs.mount();
        }
      } finally {
        writing = false;
        await load;
      }
      assert.ok(claimed > created, `pgwal never reported a flush in ${CUTS} runs`);

      // Resume on what survived: to a position past everything, then one more cut.
      const endpos = await workload(500);
      const last = new WalReceiver({
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
        directory: fs.mountPoint,
        slot: variant.slot,
        endpos,
        synchronous: variant.synchronous,
        compression: variant.compression === undefined ? undefined : { method: variant.compression },
        logger: silentLogger,
      });
      assert.deepEqual(await last.run(), { reason: "endpos" });
      await fs.cutPower();
      await assertHoldsWal(fs.durableDir, created, endpos, { completeBeforeLast: true });
      await cluster.sql(`SELECT pg_drop_replication_slot('${variant.slot}')`);
      await fs.destroy();
    });
  }
});
