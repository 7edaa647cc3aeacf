/**
 * `pgwal verify --records` on damaged copies of a real archive: one flipped byte in a random record
 * of a complete segment (fast-check over positions, seeded) is found and named by file and LSN
 * while the header-only verify passes; a truncated segment, two swapped segments and a segment
 * spliced in from another cluster are found; gzip and lz4 files are read like plain ones.
 */
import assert from "node:assert/strict";
import { cp, mkdtemp, readFile, rm, truncate, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { verifyArchive } from "../../src/archive/verify.js";
import { verifyArchiveRecords } from "../../src/archive/verify-records.js";
import { formatLsn } from "../../src/lsn.js";
import { lz4CompressFrame } from "../../src/wal/lz4-frame.js";
import { runPgwal } from "../cli/cli-harness.js";
import { PgCluster } from "../support/cluster.js";
import { propertySettings } from "../support/property-runs.js";
import {
  copyCompleteSegments,
  REAL_WAL_SETTINGS,
  type ReadArchive,
  readRecordsOf,
  runWorkload,
} from "../wal/records/real-wal.js";

const SEGMENT = 1 << 20;
const PAGE = 8192;
let cluster: PgCluster;
let pristine: string;
let names: string[];
let read: ReadArchive;

before(async () => {
  cluster = await PgCluster.start({
    name: "records-damage",
    walSegmentSizeMb: 1,
    settings: REAL_WAL_SETTINGS,
  });
  await runWorkload(cluster);
  pristine = join(cluster.baseDir, "pristine");
  names = await copyCompleteSegments(cluster, pristine);
  read = await readRecordsOf(pristine, names, SEGMENT);
});

after(async () => {
  await cluster?.destroy();
});

async function copyOfArchive(): Promise<string> {
  const directory = await mkdtemp(join(cluster.baseDir, "archive-"));
  await cp(pristine, directory, { recursive: true });
  return directory;
}

/** LSN of the k-th byte of the record at `start` (page headers are not record bytes). */
function lsnOfRecordByte(start: bigint, k: number): number {
  let position = Number(start);
  let left = k;
  for (;;) {
    const pageEnd = (Math.floor(position / PAGE) + 1) * PAGE;
    if (position + left < pageEnd) return position + left;
    left -= pageEnd - position;
    position = pageEnd + (pageEnd % SEGMENT === 0 ? 40 : 24);
  }
}

function fileOf(lsn: number): string {
  const segNo = Math.floor(lsn / SEGMENT);
  return names.find(
    (name) => Number.parseInt(name.slice(16), 16) + Number.parseInt(name.slice(8, 16), 16) * 4096 === segNo,
  )!;
}

test("one flipped byte in any record is found and named by file and LSN; the header-only verify passes", async () => {
  const directory = await copyOfArchive();
  try {
    // Records wholly inside the copied segments, not in the first one (whose start may be a continuation).
    const candidates = read.records.filter(
      (record) => record.lsn >= BigInt(Number.parseInt(names[1]!.slice(16), 16) * SEGMENT),
    );
    let cliChecked = false;
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 0, max: candidates.length - 1 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 255 }),
        async (index, where, mask) => {
          const record = candidates[index]!;
          const lsn = lsnOfRecordByte(record.lsn, Math.floor(where * record.totalLength));
          const file = join(directory, fileOf(lsn));
          const original = await readFile(file);
          const damaged = Buffer.from(original);
          damaged[lsn % SEGMENT]! ^= mask;
          await writeFile(file, damaged);
          try {
            const report = await verifyArchiveRecords(directory);
            assert.equal(report.ok, false);
            const [problem] = report.problems;
            assert.equal(problem?.lsn, formatLsn(record.lsn), JSON.stringify(report.problems));
            assert.equal(problem.file, fileOf(Number(record.lsn)));
            assert.equal((await verifyArchive(directory)).ok, true, "header-only verify passes");
            if (!cliChecked) {
              cliChecked = true;
              const cli = await runPgwal(["verify", "--records", directory]);
              assert.equal(cli.status, 1, cli.stdout + cli.stderr);
              assert.match(cli.stdout, new RegExp(`error: ${problem.file}: .* at ${formatLsn(record.lsn)}`));
              const headersOnly = await runPgwal(["verify", directory]);
              assert.equal(headersOnly.status, 0, headersOnly.stdout);
            }
          } finally {
            await writeFile(file, original);
          }
        },
      ),
      // Each run verifies the whole archive: a fixed dozen, not PGWAL_PROPERTY_RUNS (CI raises that
      // to thousands for the cheap codec properties).
      {
        ...propertySettings(),
        numRuns: 12,
        interruptAfterTimeLimit: 180_000,
        seed: Number(process.env.PGWAL_PROPERTY_SEED ?? 20261129),
      },
    );
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test("a truncated segment, two swapped segments and a segment of another cluster are named", async () => {
  const victim = names[5]!;
  const next = names[6]!;
  const directory = await copyOfArchive();
  try {
    await truncate(join(directory, victim), 300_000);
    const truncated = await verifyArchiveRecords(directory);
    assert.ok(
      truncated.problems.some((problem) => problem.kind === "truncated" && problem.file === victim),
      JSON.stringify(truncated.problems),
    );
    const cli = await runPgwal(["verify", "--records", directory]);
    assert.equal(cli.status, 1);

    await cp(join(pristine, victim), join(directory, next));
    await cp(join(pristine, next), join(directory, victim));
    const swapped = await verifyArchiveRecords(directory);
    assert.equal(swapped.problems[0]?.file, victim, JSON.stringify(swapped.problems));
    assert.equal(swapped.problems[0]?.kind, "page");
    assert.match(swapped.problems[0]!.message, /page address/);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }

  const other = await PgCluster.start({
    name: "records-other",
    walSegmentSizeMb: 1,
    settings: REAL_WAL_SETTINGS,
  });
  const spliced = await copyOfArchive();
  try {
    await other.generateWal(12);
    const otherNames = await copyCompleteSegments(other, join(other.baseDir, "archive"));
    const shared = names.slice(1, -1).find((name) => otherNames.includes(name));
    assert.ok(shared, "the other cluster wrote a segment of the same name");
    await cp(join(other.baseDir, "archive", shared), join(spliced, shared));
    const report = await verifyArchiveRecords(spliced);
    const problem = report.problems.find((p) => p.file === shared);
    assert.ok(problem, JSON.stringify(report.problems));
    assert.match(problem.message, /another cluster/);
  } finally {
    await rm(spliced, { recursive: true, force: true });
    await other.destroy();
  }
});

test("gzip and lz4 segments are read like plain ones, and damage inside them is found", async () => {
  const directory = await copyOfArchive();
  try {
    const [gz, lz4] = [names[3]!, names[4]!];
    await writeFile(join(directory, `${gz}.gz`), gzipSync(await readFile(join(pristine, gz))));
    await writeFile(join(directory, `${lz4}.lz4`), lz4CompressFrame(await readFile(join(pristine, lz4))));
    await unlink(join(directory, gz));
    await unlink(join(directory, lz4));
    const clean = await verifyArchiveRecords(directory);
    assert.deepEqual(clean.problems, []);
    assert.equal(clean.records, read.records.length);

    const record = read.records.find((r) => fileOf(Number(r.lsn)) === lz4 && r.totalLength > 100)!;
    const content = await readFile(join(pristine, lz4));
    content[lsnOfRecordByte(record.lsn, 60) % SEGMENT]! ^= 0x40;
    await writeFile(join(directory, `${lz4}.lz4`), lz4CompressFrame(content));
    const damaged = await verifyArchiveRecords(directory);
    assert.equal(damaged.problems[0]?.file, `${lz4}.lz4`);
    assert.equal(damaged.problems[0]?.lsn, formatLsn(record.lsn));
    assert.equal(damaged.problems[0]?.kind, "crc");
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});

test("--from/--to read only the segments of that range", async () => {
  const segNoOf = (name: string) => BigInt(Number.parseInt(name.slice(16), 16));
  const from = segNoOf(names[4]!) * BigInt(SEGMENT) + 100n;
  const to = segNoOf(names[6]!) * BigInt(SEGMENT) + 5000n;
  const report = await verifyArchiveRecords(pristine, { from, to });
  assert.deepEqual(report.problems, []);
  assert.equal(report.filesRead, 3);
  assert.equal(report.bytes, 3 * SEGMENT);
  const cli = await runPgwal([
    "verify",
    "--records",
    "--json",
    "--from",
    formatLsn(from),
    "--to",
    formatLsn(to),
    pristine,
  ]);
  assert.equal(cli.status, 0, cli.stdout + cli.stderr);
  const json = JSON.parse(cli.stdout) as { records: { filesRead: number; records: number } };
  assert.equal(json.records.filesRead, 3);
  assert.equal(json.records.records, report.records);
});
