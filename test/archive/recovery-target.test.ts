/**
 * The recovery target decision on hand-built time maps: PostgreSQL's stop rules (xlogrecovery.c)
 * for time, name and LSN targets, gaps, damage, timelines, and the backup start; and the time
 * formats pgwal reads and prints.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { formatPgTime, parsePgTime } from "../../src/archive/pg-time.js";
import { decideRecoveryTarget, timelineTimes } from "../../src/archive/recovery-target.js";
import type { TimeMap, TimeMapSegment } from "../../src/archive/time-map.js";
import { recoveryPath } from "../../src/archive/timeline-histories.js";
import { formatLsn, parseLsn } from "../../src/lsn.js";
import { walFileName } from "../../src/wal/names.js";

const SIZE = 1 << 20;
const T0 = parsePgTime("2026-11-29 12:00:00+00")!;
const sec = (n: number) => T0 + n * 1_000_000;

/** Segment segNo on `timeline` with transaction ends at the given seconds (LSNs spread in the segment). */
function segment(
  segNo: number,
  ends: number[],
  extra: Partial<TimeMapSegment> = {},
  timeline = 1,
): TimeMapSegment {
  const lsn = (i: number) => formatLsn(BigInt(segNo * SIZE + 1000 + i * 100));
  const timed = ends.map((s, i) => ({ lsn: lsn(i), time: sec(s) }));
  const latest = timed.reduce<(typeof timed)[number] | null>(
    (a, b) => (a === null || b.time > a.time ? b : a),
    null,
  );
  const name = walFileName(timeline, BigInt(segNo), SIZE);
  return {
    file: name,
    walFileName: name,
    timeline,
    segNo: String(segNo),
    partial: false,
    size: SIZE,
    mtimeMs: 0,
    previous: null,
    records: 10,
    transactionEnds: ends.length,
    firstEnd: timed[0] ?? null,
    lastEnd: timed.at(-1) ?? null,
    latestEnd: latest,
    restorePoints: [],
    checkpoints: [],
    backupEnds: [],
    walEnd: null,
    problem: null,
    ...extra,
  };
}

const map = (segments: TimeMapSegment[]): TimeMap => ({ directory: "/a", segmentSize: SIZE, segments });
const path1 = recoveryPath(1, [], SIZE);
const at = (s: number) => ({ kind: "time" as const, time: sec(s) });

test("a time between two commits is reached at the first commit after it; its segments are listed", () => {
  const m = map([segment(2, [10, 20]), segment(3, [30, 40]), segment(4, [50])]);
  const decision = decideRecoveryTarget(m, { target: at(35), path: path1 });
  assert.equal(decision.reachable, true, decision.message);
  assert.deepEqual(decision.segments, [walFileName(1, 2n, SIZE), walFileName(1, 3n, SIZE)]);
  assert.equal(decision.stop?.file, walFileName(1, 3n, SIZE));
  assert.equal(decision.start, "0/200000");
});

test("inclusive (default): a commit exactly at the target does not stop recovery; exclusive: it does", () => {
  const m = map([segment(2, [10, 20]), segment(3, [30])]);
  const inclusive = decideRecoveryTarget(m, { target: at(20), path: path1 });
  assert.equal(inclusive.stop?.file, walFileName(1, 3n, SIZE));
  const exclusive = decideRecoveryTarget(m, { target: { ...at(20), inclusive: false }, path: path1 });
  assert.equal(exclusive.stop?.file, walFileName(1, 2n, SIZE));
  assert.equal(exclusive.stop?.lsn, null, "the stop record is not the segment's first end");
  assert.equal(exclusive.reachable, true);
});

test("a target at or after the last commit is not reachable, and the message says so", () => {
  const m = map([segment(2, [10, 20]), segment(3, [30])]);
  for (const s of [30, 99]) {
    const decision = decideRecoveryTarget(m, { target: at(s), path: path1 });
    assert.equal(decision.reachable, false);
    assert.equal(decision.reason, "after-last-commit");
    assert.match(decision.message, /last commit\/abort in the archive \(2026-11-29 12:00:30\+00/);
  }
});

test("a commit time that is not in LSN order still finds the first segment with a later commit", () => {
  const m = map([segment(2, [10, 25, 20]), segment(3, [30])]);
  const decision = decideRecoveryTarget(m, { target: at(22), path: path1 });
  assert.equal(decision.stop?.file, walFileName(1, 2n, SIZE));
});

test("a gap before the target makes it unreachable and names the missing segment; one after it does not", () => {
  const m = map([segment(2, [10]), segment(4, [40]), segment(5, [50])]);
  const blocked = decideRecoveryTarget(m, { target: at(45), path: path1 });
  assert.equal(blocked.reachable, false);
  assert.equal(blocked.reason, "gap");
  assert.equal(blocked.missing, walFileName(1, 3n, SIZE));
  assert.match(blocked.message, new RegExp(`segment ${walFileName(1, 3n, SIZE)} is missing`));
  const fromAfterGap = decideRecoveryTarget(m, {
    target: at(45),
    path: path1,
    fromBackup: parseLsn("0/400000"),
  });
  assert.equal(fromAfterGap.reachable, true, fromAfterGap.message);
  assert.deepEqual(fromAfterGap.segments, [walFileName(1, 4n, SIZE), walFileName(1, 5n, SIZE)]);
  const before = decideRecoveryTarget(m, { target: at(5), path: path1 });
  assert.equal(before.reachable, true, "the gap lies after the stop");
});

test("a damaged segment on the way stops recovery", () => {
  const m = map([
    segment(2, [10]),
    segment(3, [30], { problem: "CRC mismatch at 0/300100" }),
    segment(4, [40]),
  ]);
  const decision = decideRecoveryTarget(m, { target: at(35), path: path1 });
  assert.equal(decision.reason, "damaged");
  assert.match(decision.message, /CRC mismatch/);
});

test("restore points: found by name after the start; unknown; before the backup start", () => {
  const point = { name: "before-upgrade", lsn: "0/300500", time: sec(33) };
  const m = map([segment(2, [10]), segment(3, [30], { restorePoints: [point] }), segment(4, [40])]);
  const found = decideRecoveryTarget(m, { target: { kind: "name", name: "before-upgrade" }, path: path1 });
  assert.equal(found.reachable, true);
  assert.equal(found.stop?.lsn, "0/300500");
  assert.equal(found.segments.length, 2);
  const unknown = decideRecoveryTarget(m, { target: { kind: "name", name: "nope" }, path: path1 });
  assert.equal(unknown.reason, "unknown-name");
  const early = decideRecoveryTarget(m, {
    target: { kind: "name", name: "before-upgrade" },
    path: path1,
    fromBackup: parseLsn("0/400028"),
  });
  assert.equal(early.reason, "before-backup-start");
});

test("a time before the backup's start checkpoint, or a stop before its end record, is refused", () => {
  const checkpoint = { lsn: "0/300100", redo: "0/300028", time: sec(31), shutdown: false };
  const m = map([
    segment(3, [30, 32], { checkpoints: [checkpoint] }),
    segment(4, [40], { backupEnds: [{ lsn: "0/400F00", backupStart: "0/300028" }] }),
    segment(5, [50]),
  ]);
  const fromBackup = parseLsn("0/300028");
  assert.equal(
    decideRecoveryTarget(m, { target: at(20), path: path1, fromBackup }).reason,
    "before-backup-start",
  );
  assert.equal(
    decideRecoveryTarget(m, { target: at(35), path: path1, fromBackup }).reason,
    "before-consistency",
  );
  assert.equal(decideRecoveryTarget(m, { target: at(45), path: path1, fromBackup }).reachable, true);
});

test("LSN targets: inside the archive, beyond its end, inside a .partial's written part", () => {
  const partial = segment(4, [40], {
    partial: true,
    walEnd: "0/408000",
    file: `${walFileName(1, 4n, SIZE)}.partial`,
  });
  const m = map([segment(3, [30]), partial]);
  assert.equal(
    decideRecoveryTarget(m, { target: { kind: "lsn", lsn: parseLsn("0/350000") }, path: path1 }).reachable,
    true,
  );
  const inPartial = decideRecoveryTarget(m, {
    target: { kind: "lsn", lsn: parseLsn("0/404000") },
    path: path1,
  });
  assert.deepEqual(inPartial.segments, [walFileName(1, 3n, SIZE), partial.file]);
  const beyond = decideRecoveryTarget(m, { target: { kind: "lsn", lsn: parseLsn("0/409000") }, path: path1 });
  assert.equal(beyond.reason, "beyond-end");
});

test("timelines: the newest timeline's path is followed; the old timeline's later files are not used", () => {
  const path2 = recoveryPath(2, [{ timeline: 1, switchpoint: parseLsn("0/400800"), reason: "" }], SIZE);
  const m = map([
    segment(3, [30]),
    segment(4, [41], { partial: true, file: `${walFileName(1, 4n, SIZE)}.partial` }),
    segment(5, [70], {}, 1), // timeline 1 went on after the switch: not on the path
    segment(4, [41, 45], {}, 2),
    segment(5, [50], {}, 2),
  ]);
  const decision = decideRecoveryTarget(m, { target: at(48), path: path2 });
  assert.equal(decision.reachable, true, decision.message);
  assert.deepEqual(decision.segments, [
    walFileName(1, 3n, SIZE),
    walFileName(2, 4n, SIZE),
    walFileName(2, 5n, SIZE),
  ]);
  assert.equal(decision.historyFile, "00000002.history");
  assert.equal(decideRecoveryTarget(m, { target: at(60), path: path2 }).reason, "after-last-commit");
  const times = timelineTimes(m);
  assert.deepEqual(
    times.map((t) => [t.timeline, t.firstCommit, t.lastCommit]),
    [
      [1, formatPgTime(sec(30)), formatPgTime(sec(70))],
      [2, formatPgTime(sec(41)), formatPgTime(sec(50))],
    ],
  );
});

test("times are printed like PostgreSQL and read in the ISO 8601 forms of recovery_target_time", () => {
  assert.equal(formatPgTime(0), "2000-01-01 00:00:00+00");
  assert.equal(formatPgTime(sec(1) + 120_000), "2026-11-29 12:00:01.12+00");
  assert.equal(formatPgTime(-1), "1999-12-31 23:59:59.999999+00");
  assert.equal(parsePgTime("2026-11-29T12:00:00Z"), T0);
  assert.equal(parsePgTime("2026-11-29 13:30:00+01:30"), T0);
  assert.equal(parsePgTime("2026-11-29 07:00:00-0500"), T0);
  assert.equal(parsePgTime("2026-11-29 12:00:00.000250+00"), T0 + 250);
  assert.equal(parsePgTime("2026-11-29"), parsePgTime("2026-11-29 00:00:00"));
  for (const text of formatPgTime(sec(7) + 5).split("\n")) assert.equal(parsePgTime(text), sec(7) + 5);
  for (const bad of ["yesterday", "2026-13-01", "2026-02-30 00:00+00", "2026-11-29 12:00 CET", "12:00"])
    assert.equal(parsePgTime(bad), undefined, bad);
});
