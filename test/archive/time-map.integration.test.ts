/**
 * The time map and recovery targets on an archive written by `pgwal receive` from a real server:
 * commits at known times (each bracketed by clock_timestamp() read just before and after it, one
 * segment apart), a restore point, then: a time between two commits is reachable and its segments
 * are listed; a time after the last commit is not; a restore point is found by name, an unknown
 * one is not; a deleted middle segment makes a later target unreachable and is named; the index
 * (kept outside the archive) is rebuilt after the deletion and refreshed after a segment changes.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { formatPgTime, parsePgTime } from "../../src/archive/pg-time.js";
import { timelineTimes } from "../../src/archive/recovery-target.js";
import { checkRecoveryTarget } from "../../src/archive/target-check.js";
import { archiveTimeMap, defaultTimeMapFile } from "../../src/archive/time-map.js";
import { parseLsn } from "../../src/lsn.js";
import { PGWAL_BIN, runPgwal } from "../cli/cli-harness.js";
import { chownTreeToServerUser, type LowLevelBackup, takeLowLevelBackup } from "../support/base-backup.js";
import { PgCluster, TEST_USERS } from "../support/cluster.js";
import { findFreePort } from "../support/free-port.js";
import { runCommand } from "../support/run.js";
import { runSql } from "../support/sql-client.js";

let cluster: PgCluster;
let work: string;
let archive: string;
let stateDirectory: string;
/** clock_timestamp() just before and just after each test commit (PostgreSQL µs since 2000). */
const commits: { before: number; after: number }[] = [];
const POINT = "tm-before-change";
let backup: LowLevelBackup;
let backupStart: string;

function startReceiver(directory: string): ChildProcess {
  return spawn(
    process.execPath,
    [PGWAL_BIN, "receive", "-D", directory, "-S", "timemap", "-s", "1"].concat([
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      TEST_USERS.trust.name,
    ]),
    { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, PGSSLMODE: "disable" } },
  );
}

async function now(): Promise<number> {
  return parsePgTime(
    await cluster.sql(
      "SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'",
    ),
  )!;
}

async function timedCommit(value: number): Promise<void> {
  const before = await now();
  await cluster.sql(`INSERT INTO tm VALUES (${value})`);
  const after = await now();
  commits.push({ before, after });
  await cluster.sql("SELECT pg_sleep(0.3); SELECT pg_switch_wal();");
}

before(async () => {
  cluster = await PgCluster.start({ name: "timemap", walSegmentSizeMb: 1, settings: { autovacuum: "off" } });
  work = await mkdtemp(join(cluster.baseDir, "work-"));
  archive = join(work, "archive");
  stateDirectory = join(work, "state");
  await mkdir(archive);
  await cluster.sql("SELECT pg_create_physical_replication_slot('timemap', true)");
  await cluster.sql("CREATE TABLE tm (v int)");
  const receiver = startReceiver(archive);
  try {
    for (
      let i = 0;
      (await cluster.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'timemap'")) !== "t";
      i++
    ) {
      assert.ok(i < 300, "pgwal never started streaming");
      await sleep(100);
    }
    // A base backup without WAL: recovering it (last test) needs the archive from its start on.
    backup = await takeLowLevelBackup(cluster, join(work, "backup"), { label: "timemap" });
    backupStart = /^START WAL LOCATION: ([0-9A-F]+\/[0-9A-F]+) /m.exec(backup.labelFile)![1]!;
    await cluster.sql("SELECT pg_sleep(1.1)");
    for (let i = 1; i <= 3; i++) await timedCommit(i);
    await cluster.sql(`SELECT pg_create_restore_point('${POINT}')`);
    await timedCommit(4);
    await cluster.sql("SELECT pg_switch_wal()");
    const end = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
    for (let i = 0; ; i++) {
      const flushed = await cluster.sql(
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'timemap'",
      );
      if (flushed !== "" && parseLsn(flushed) >= end) break;
      assert.ok(i < 300, "pgwal never flushed the last segment");
      await sleep(100);
    }
  } finally {
    receiver.kill("SIGTERM");
    await new Promise((done) => receiver.once("exit", done));
  }
});

after(async () => {
  await cluster?.destroy();
});

const env = () => ({ STATE_DIRECTORY: stateDirectory, TZ: "UTC" });
/** A time strictly between commit i's end and commit i+1's start (0-based), as the user would type it. */
const between = (i: number) => formatPgTime(Math.floor((commits[i]!.after + commits[i + 1]!.before) / 2));

test("the map holds each commit's time, the restore point, and lives outside the archive", async () => {
  const { map, indexFile, filesRead } = await archiveTimeMap(archive, { env: env() });
  assert.equal(indexFile, await defaultTimeMapFile(archive, env()));
  assert.ok(indexFile.startsWith(stateDirectory));
  assert.ok(filesRead > 0);
  const ends = map.segments.flatMap((s) => [s.firstEnd, s.lastEnd, s.latestEnd]).filter((e) => e !== null);
  for (const [i, commit] of commits.entries()) {
    assert.ok(
      ends.some((end) => end.time >= commit.before && end.time <= commit.after),
      `commit ${i + 1} (between ${formatPgTime(commit.before)} and ${formatPgTime(commit.after)}) is in the map`,
    );
  }
  const points = map.segments.flatMap((s) => s.restorePoints);
  assert.deepEqual(
    points.map((p) => p.name),
    [POINT],
  );
  assert.ok(points[0]!.time > commits[2]!.after && points[0]!.time < commits[3]!.before);
  const [timeline] = timelineTimes(map);
  assert.equal(timeline?.restorePoints[0]?.name, POINT);
  assert.ok(parsePgTime(timeline!.lastCommit!)! >= commits[3]!.before);
  assert.deepEqual(
    (await readdir(archive)).filter((name) => !/^[0-9A-F]{24}(\.partial)?$/.test(name)),
    [],
  );
  const again = await archiveTimeMap(archive, { env: env() });
  assert.equal(again.filesRead, 0, "a current index is used as is");
  assert.deepEqual(again.map, map);
  // An index entry of the wrong shape (a damaged or foreign index) is re-read, not trusted.
  const index = JSON.parse(await readFile(indexFile, "utf8")) as { segments: Record<string, unknown>[] };
  const damaged = index.segments.findIndex((segment) => segment.firstEnd !== null);
  index.segments[damaged]!.firstEnd = { lsn: 42, time: "noon" };
  await writeFile(indexFile, JSON.stringify(index));
  const repaired = await archiveTimeMap(archive, { env: env() });
  assert.equal(repaired.filesRead, 1);
  assert.deepEqual(repaired.map, map);
});

test("a time between two commits is reachable and lists its segments; a time after the last commit is not", async () => {
  const yes = await runPgwal(["verify", "--target-time", between(1), archive], { env: env() });
  assert.equal(yes.status, 0, yes.stdout + yes.stderr);
  assert.match(yes.stdout, /^reachable: recovery to time .* is possible/);
  const json = await runPgwal(["verify", "--json", `--target-time=${between(1)}`, archive], { env: env() });
  const decision = JSON.parse(json.stdout) as {
    reachable: boolean;
    segments: string[];
    stop: { file: string; time: string | null };
  };
  assert.equal(decision.reachable, true);
  // It stops at commit 3: the file holding it is the last one listed, and the stop time is commit 3's.
  assert.equal(decision.segments.at(-1), decision.stop.file);
  const stopTime = parsePgTime(decision.stop.time!)!;
  assert.ok(stopTime >= commits[2]!.before && stopTime <= commits[2]!.after, decision.stop.time!);
  assert.match(yes.stdout, new RegExp(decision.segments.join(" ")));

  // A target at commit 3's exact time: inclusive (default) replays it and stops at commit 4;
  // --target-inclusive=off stops before commit 3.
  const atCommit = async (extra: string[]) => {
    const run = await runPgwal(
      ["verify", "--json", "--target-time", decision.stop.time!, ...extra, archive],
      {
        env: env(),
      },
    );
    assert.equal(run.status, 0, run.stdout + run.stderr);
    return JSON.parse(run.stdout) as typeof decision;
  };
  const inclusive = await atCommit([]);
  const stopAt4 = parsePgTime(inclusive.stop.time!)!;
  assert.ok(stopAt4 >= commits[3]!.before && stopAt4 <= commits[3]!.after, "inclusive: stops at commit 4");
  assert.ok(inclusive.segments.length > decision.segments.length);
  const exclusive = await atCommit(["--target-inclusive=off"]);
  assert.deepEqual(exclusive.segments, decision.segments);
  assert.equal(exclusive.stop.time, decision.stop.time);

  const late = formatPgTime(commits[3]!.after + 1_000_000);
  const no = await runPgwal(["verify", "--target-time", late, archive], { env: env() });
  assert.equal(no.status, 1, no.stdout + no.stderr);
  assert.match(
    no.stdout,
    /NOT reachable: target time .* is not before the last commit\/abort in the archive/,
  );
});

test("a restore point is found by name; an unknown name is not", async () => {
  const found = await runPgwal(["verify", "--json", "--target-name", POINT, archive], { env: env() });
  assert.equal(found.status, 0, found.stdout + found.stderr);
  const decision = JSON.parse(found.stdout) as { stop: { lsn: string }; segments: string[] };
  const lsn = parseLsn(decision.stop.lsn);
  assert.ok(
    decision.segments.at(-1)!.endsWith(((lsn >> 20n) & 0xffn).toString(16).toUpperCase().padStart(8, "0")),
  );
  const unknown = await runPgwal(["verify", "--target-name", "no-such-point", archive], { env: env() });
  assert.equal(unknown.status, 1);
  assert.match(unknown.stdout, /no restore point named "no-such-point"/);
  const status = await runPgwal(["status", "--json", archive], { env: env() });
  const times = (
    JSON.parse(status.stdout) as { timeMap: { restorePoints: { name: string }[]; lastCommit: string }[] }
  ).timeMap;
  assert.equal(times[0]?.restorePoints[0]?.name, POINT);
  const text = await runPgwal(["status", archive], { env: env() });
  assert.match(
    text.stdout,
    new RegExp(`timeline 1: commits/aborts from .* to .*\\n    restore point "${POINT}" at `),
  );
});

test("a deleted middle segment makes a later target unreachable and is named; the index is rebuilt", async () => {
  const copy = join(work, "gap");
  await cp(archive, copy, { recursive: true });
  try {
    const whole = await checkRecoveryTarget(
      copy,
      { kind: "time", time: parsePgTime(between(2))! },
      { env: env() },
    );
    assert.equal(whole.reachable, true, whole.message);
    // The file that holds commit 2: deleting it leaves a gap between the start and commit 4.
    const { map } = await archiveTimeMap(copy, { env: env() });
    const holder = map.segments.find(
      (s) =>
        s.lastEnd !== null && s.lastEnd.time >= commits[1]!.before && s.lastEnd.time <= commits[1]!.after,
    )!;
    await unlink(join(copy, holder.file));
    const rebuilt = await archiveTimeMap(copy, { env: env() });
    assert.equal(rebuilt.filesRead, 1, "the file after the gap is re-read (its neighbour is gone)");
    const index = JSON.parse(await readFile(rebuilt.indexFile, "utf8")) as { segments: { file: string }[] };
    assert.equal(
      index.segments.some((s) => s.file === holder.file),
      false,
    );
    const cli = await runPgwal(["verify", "--target-time", between(2), copy], { env: env() });
    assert.equal(cli.status, 1, cli.stdout);
    assert.match(cli.stdout, new RegExp(`segment ${holder.walFileName} is missing from the archive`));
    // Without the index the same map comes back from the WAL.
    await unlink(rebuilt.indexFile);
    const fromWal = await archiveTimeMap(copy, { env: env() });
    assert.equal(fromWal.filesRead, fromWal.map.segments.length);
    assert.deepEqual(fromWal.map, rebuilt.map);
    // A target whose stop lies before the gap is still reachable.
    const beforeFirst = formatPgTime(commits[0]!.before - 1);
    const early = await runPgwal(["verify", "--target-time", beforeFirst, copy], { env: env() });
    assert.equal(early.status, 0, early.stdout);
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
});

test("a changed segment is re-read: damage in it makes a later target unreachable", async () => {
  const copy = join(work, "changed");
  await cp(archive, copy, { recursive: true });
  try {
    const { map } = await archiveTimeMap(copy, { env: env() });
    const holder = map.segments.find(
      (s) =>
        s.lastEnd !== null && s.lastEnd.time >= commits[2]!.before && s.lastEnd.time <= commits[2]!.after,
    )!;
    assert.equal(holder.problem, null);
    const content = await readFile(join(copy, holder.file));
    const at = Number(parseLsn(holder.lastEnd!.lsn) % BigInt(content.length)) + 30;
    content[at]! ^= 0xff;
    await writeFile(join(copy, holder.file), content);
    const refreshed = await archiveTimeMap(copy, { env: env() });
    assert.ok(refreshed.filesRead >= 1 && refreshed.filesRead <= 2, `${refreshed.filesRead} file(s) re-read`);
    const changed = refreshed.map.segments.find((s) => s.file === holder.file)!;
    assert.match(changed.problem ?? "", /CRC/);
    const cli = await runPgwal(["verify", "--json", "--target-time", between(2), copy], { env: env() });
    assert.equal(cli.status, 1, cli.stdout);
    const decision = JSON.parse(cli.stdout) as { reason: string; message: string };
    assert.equal(decision.reason, "damaged");
    assert.match(decision.message, new RegExp(holder.file));
  } finally {
    await rm(copy, { recursive: true, force: true });
  }
});

test("a target called reachable from a base backup is reached by a recovering server", {
  timeout: 180_000,
}, async () => {
  const target = between(1);
  const fromBackup = parseLsn(backupStart);
  const check = await checkRecoveryTarget(
    archive,
    { kind: "time", time: parsePgTime(target)! },
    { env: env(), fromBackup },
  );
  assert.equal(check.reachable, true, check.message);
  assert.ok(
    check.segments[0]!.startsWith(backup.startWalFile),
    `${check.segments[0]} is the backup's first segment`,
  );
  // The backup's start checkpoint is in the map: a time before it cannot be a stop point.
  const early = await runPgwal(
    [
      "verify",
      "--target-time",
      formatPgTime(commits[0]!.before - 60_000_000),
      "--from-backup",
      backupStart,
      archive,
    ],
    { env: env() },
  );
  assert.equal(early.status, 1, early.stdout);
  assert.match(early.stdout, /before the backup's start checkpoint/);

  const data = join(work, "backup");
  const port = await findFreePort();
  const restoreCommand = `${process.execPath} ${PGWAL_BIN} restore %f %p --directory ${archive}`;
  await writeFile(
    join(data, "postgresql.auto.conf"),
    `port = ${port}\nunix_socket_directories = '${work}'\nrestore_command = '${restoreCommand}'\narchive_mode = off\n` +
      `recovery_target_time = '${target}'\nrecovery_target_action = 'promote'\n`,
  );
  await writeFile(join(data, "recovery.signal"), "");
  await chownTreeToServerUser(work);
  const pgCtl = join(cluster.binDir, "pg_ctl");
  await runCommand(pgCtl, ["-D", data, "-l", join(work, "recovered.log"), "-w", "-t", "120", "start"], {
    asServerUser: true,
    timeoutMs: 150_000,
  });
  try {
    const query = (sql: string) =>
      runSql({ host: work, port, user: TEST_USERS.superuser.name, database: "postgres" }, sql);
    for (let i = 0; (await query("SELECT pg_is_in_recovery()")) === "t"; i++) {
      assert.ok(i < 600, "recovery did not finish");
      await sleep(100);
    }
    // Commits 1 and 2 are before the target, 3 and 4 after it.
    assert.equal(await query("SELECT string_agg(v::text, ',' ORDER BY v) FROM tm"), "1,2");
  } finally {
    await runCommand(pgCtl, ["-D", data, "-m", "immediate", "stop"], { asServerUser: true }).catch(
      () => undefined,
    );
  }
});

test("wrong target options are usage errors (exit 2), named in one line", async () => {
  const cases: [string[], RegExp][] = [
    [["--target-time", "yesterday"], /invalid time "yesterday" for option --target-time/],
    [["--target-time", "2026-11-29 12:00 CET"], /invalid time/],
    [["--target-time", "2026-11-29", "--target-name", "x"], /exclude each other/],
    [["--target-name", "x", "--target-inclusive=off"], /--target-inclusive goes with --target-time/],
    [["--target-time", "2026-11-29", "--target-inclusive=maybe"], /invalid value "maybe"/],
    [["--from-backup", "0/1000000"], /--from-backup needs a target option/],
    [["--target-lsn", "0/XYZ"], /invalid LSN "0\/XYZ" for option --target-lsn/],
    [["--target-name", "n".repeat(64)], /1 to 63 bytes/],
    [["--target-name", "x", "--records"], /does not go with --records/],
  ];
  for (const [args, message] of cases) {
    const run = await runPgwal(["verify", ...args, archive], { env: env() });
    assert.equal(run.status, 2, `${args.join(" ")}: ${run.stdout}${run.stderr}`);
    assert.match(run.stderr, message);
    assert.equal(run.stderr.trim().split("\n").length, 1);
  }
});
