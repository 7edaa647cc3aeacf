/**
 * The record reader on real WAL of the PostgreSQL under test (the matrix runs this on 13–18): every
 * record of every complete segment is read with its chain and CRC intact, the commits, abort,
 * prepared transactions, restore point and checkpoint the test made are found, and where the same
 * major's pg_waldump exists (the machine's PostgreSQL 15), the record list and the commit and
 * restore-point lists equal pg_waldump's on the same files.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { verifyArchiveRecords } from "../../../src/archive/verify-records.js";
import { formatLsn } from "../../../src/lsn.js";
import { formatTimestampTz } from "../../../src/wal/records/record-format.js";
import { runPgwal } from "../../cli/cli-harness.js";
import { findSameMajorProgram, PgCluster } from "../../support/cluster.js";
import {
  copyCompleteSegments,
  REAL_WAL_SETTINGS,
  type ReadArchive,
  readRecordsOf,
  runWorkload,
  type WorkloadFacts,
} from "./real-wal.js";

const SEGMENT = 1 << 20;
let cluster: PgCluster;
let archive: string;
let names: string[];
let facts: WorkloadFacts;
let read: ReadArchive;

before(async () => {
  cluster = await PgCluster.start({ name: "records", walSegmentSizeMb: 1, settings: REAL_WAL_SETTINGS });
  facts = await runWorkload(cluster);
  archive = join(cluster.baseDir, "archive");
  names = await copyCompleteSegments(cluster, archive);
  read = await readRecordsOf(archive, names, SEGMENT);
});

after(async () => {
  await cluster?.destroy();
});

/** pg_waldump's text for the same timestamps: "2026-11-29 16:06:46.365828 UTC". */
function waldumpTime(microseconds: bigint): string {
  return formatTimestampTz(microseconds).replace("T", " ").replace("Z", " UTC");
}

test("every record of every complete segment is read; verify --records agrees and finds nothing", async () => {
  assert.ok(names.length >= 20, `${names.length} segments`);
  assert.ok(read.records.length > 10_000, `${read.records.length} records`);
  assert.ok(
    read.records.some((record) => record.totalLength > 2 * SEGMENT),
    "a record spans several segments",
  );
  const report = await verifyArchiveRecords(archive);
  assert.deepEqual(report.problems, []);
  assert.equal(report.records, read.records.length);
  assert.equal(report.filesRead, names.length);
  const cli = await runPgwal(["verify", "--records", "--json", archive]);
  assert.equal(cli.status, 0, cli.stdout + cli.stderr);
  const json = JSON.parse(cli.stdout) as { ok: boolean; records: { records: number; problems: unknown[] } };
  assert.equal(json.ok, true);
  assert.equal(json.records.records, read.records.length);
});

test("the test's own commits, abort, prepared transactions, restore point and checkpoint are decoded", () => {
  const byXid = (kind: string, xid: number) =>
    read.events.filter((event) => event.kind === kind && "xid" in event && event.xid === xid);
  const window = [BigInt(facts.startedAt - 60_000) * 1000n, BigInt(facts.endedAt + 60_000) * 1000n];
  const unixMicros = (time: bigint) => time + 946_684_800_000_000n;
  for (const xid of facts.commitXids) {
    const [commit] = byXid("commit", xid);
    assert.ok(commit && "time" in commit, `commit of ${xid}`);
    const at = unixMicros(commit.time);
    assert.ok(at >= window[0]! && at <= window[1]!, `commit time ${formatTimestampTz(commit.time)}`);
  }
  assert.equal(byXid("abort", facts.abortXid).length, 1, `abort of ${facts.abortXid}`);
  assert.equal(
    byXid("commit-prepared", facts.preparedCommitXid).length,
    1,
    `commit prepared of ${facts.preparedCommitXid}`,
  );
  assert.equal(
    byXid("abort-prepared", facts.preparedAbortXid).length,
    1,
    `abort prepared of ${facts.preparedAbortXid}`,
  );
  const points = read.events.filter((event) => event.kind === "restore-point");
  assert.deepEqual(
    points.map((point) => point.name),
    [facts.restorePoint],
  );
  const checkpoint = read.events.find(
    (event) => event.kind === "checkpoint" && formatLsn(event.lsn) === facts.checkpoint.lsn,
  );
  assert.ok(checkpoint?.kind === "checkpoint", `checkpoint at ${facts.checkpoint.lsn}`);
  assert.equal(formatLsn(checkpoint.redo), facts.checkpoint.redo);
  assert.equal(checkpoint.time, BigInt(facts.checkpoint.time));
  assert.ok(read.events.filter((event) => event.kind === "switch").length >= 2);
});

test("record list, commits and restore points equal pg_waldump's on the same files", async (context) => {
  const waldump = await findSameMajorProgram(cluster, "pg_waldump");
  if (waldump === undefined) {
    context.skip(`no pg_waldump of PostgreSQL ${cluster.major} on this machine`);
    return;
  }
  const run = spawnSync(waldump, ["-p", archive, names[0]!, names.at(-1)!], {
    env: { ...process.env, TZ: "UTC" },
    maxBuffer: 1 << 30,
    encoding: "utf8",
  });
  const lines = run.stdout.split("\n").filter((line) => line.startsWith("rmgr:"));
  const lsnOf = (line: string) =>
    /lsn: ([0-9A-F]+\/[0-9A-F]+)/.exec(line)![1]!.replace(/\/0+(?=[0-9A-F])/, "/");
  assert.deepEqual(
    read.records.map((record) => formatLsn(record.lsn)),
    lines.map(lsnOf),
  );
  // pg_waldump names the prepared transaction before the time ("COMMIT_PREPARED 736: …"), and the
  // record's own xid as "tx:" for the others.
  const ends =
    /tx: +(\d+),.*desc: (COMMIT|ABORT|COMMIT_PREPARED|ABORT_PREPARED) (?:(\d+): )?(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} UTC)/;
  const theirs = lines.flatMap((line) => {
    const match = ends.exec(line);
    if (!match) return [];
    const [, tx, kind, preparedXid, time] = match as unknown as [
      string,
      string,
      string,
      string | undefined,
      string,
    ];
    return [`${lsnOf(line)} ${kind.toLowerCase().replace("_", "-")} ${preparedXid ?? tx} ${time}`];
  });
  const ours = read.events.flatMap((event) =>
    "xid" in event ? [`${formatLsn(event.lsn)} ${event.kind} ${event.xid} ${waldumpTime(event.time)}`] : [],
  );
  assert.ok(ours.length > 1500, `${ours.length} transaction ends`);
  assert.deepEqual(ours, theirs);
  const theirPoints = lines.flatMap((line) => {
    const match = /desc: RESTORE_POINT (.*)$/.exec(line);
    return match ? [`${lsnOf(line)} ${match[1]!.trim()}`] : [];
  });
  const ourPoints = read.events.flatMap((event) =>
    event.kind === "restore-point" ? [`${formatLsn(event.lsn)} ${event.name}`] : [],
  );
  assert.deepEqual(ourPoints, theirPoints);
  context.diagnostic(
    `pg_waldump ${cluster.major}: ${lines.length} records, ${theirs.length} transaction ends, ${theirPoints.length} restore point(s) in ${names.length} segments; equal`,
  );
});

test("across a promotion: both timelines' segments are read, and the new timeline's commits found", async () => {
  const standby = await cluster.createStandby({ name: "records-standby" });
  try {
    await cluster.sql("INSERT INTO history SELECT g FROM generate_series(1, 20000) g;");
    const target = (await cluster.sql("SELECT pg_current_wal_flush_lsn();")).trim();
    for (let i = 0; i < 300; i++) {
      const replayed = (await standby.sql(`SELECT pg_last_wal_replay_lsn() >= '${target}'::pg_lsn;`)).trim();
      if (replayed === "t") break;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    await standby.promote();
    const xid = Number(
      (await standby.sql("BEGIN; SELECT txid_current(); INSERT INTO history VALUES (42); COMMIT;")).split(
        "\n",
      )[0],
    );
    await standby.sql("SELECT pg_switch_wal();");
    await standby.sql("INSERT INTO history VALUES (43); SELECT pg_switch_wal();");
    const both = join(cluster.baseDir, "two-timelines");
    const oldTimeline = await copyCompleteSegments(cluster, both);
    const newTimeline = await copyCompleteSegments(standby, both);
    assert.ok(newTimeline.length >= 2 && newTimeline.every((name) => name.startsWith("00000002")));
    const report = await verifyArchiveRecords(both);
    assert.deepEqual(report.problems, []);
    assert.equal(report.filesRead, oldTimeline.length + newTimeline.length);
    const second = await readRecordsOf(both, newTimeline, SEGMENT);
    assert.ok(
      second.events.some((event) => event.kind === "commit" && event.xid === xid),
      `commit of ${xid} on timeline 2`,
    );
    const cli = await runPgwal(["verify", "--records", both]);
    assert.equal(cli.status, 0, cli.stdout + cli.stderr);
  } finally {
    await standby.destroy();
  }
});
