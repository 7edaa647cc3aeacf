/** The retention rules of `pgwal cleanup` on listings alone, and removal on a real directory. */
import assert from "node:assert/strict";
import { mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ArchiveListing, SegmentFileEntry } from "../../src/archive/archive-listing.js";
import { parseCleanupBoundary, planCleanup, removeArchiveFiles } from "../../src/archive/cleanup.js";
import { parseDuration } from "../../src/cli/duration.js";

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 29, 12);

function segment(fileName: string, ageHours: number, size = 16): SegmentFileEntry {
  const walFileName = fileName.slice(0, 24);
  return {
    fileName,
    walFileName,
    timeline: Number.parseInt(walFileName.slice(0, 8), 16),
    compression: fileName.includes(".gz") ? "gzip" : fileName.includes(".lz4") ? "lz4" : "none",
    partial: fileName.endsWith(".partial"),
    size,
    mtimeMs: NOW - ageHours * HOUR,
  };
}

function listing(segments: SegmentFileEntry[], extra: Partial<ArchiveListing> = {}): ArchiveListing {
  return { segments, histories: [], backupHistories: [], irregular: [], stray: [], ...extra };
}

const names = (plan: { remove: { fileName: string }[] }) => plan.remove.map((file) => file.fileName).sort();

test("--before removes complete segments before the boundary's position, whatever their timeline and compression", () => {
  const plan = planCleanup(
    listing([
      segment("000000010000000000000001", 50),
      segment("000000010000000000000002.gz", 40),
      segment("000000010000000000000003", 30),
      segment("000000020000000000000003", 29),
      segment("000000020000000000000004.lz4", 20),
      segment("000000020000000000000005", 10),
    ]),
    { before: "000000020000000000000004", now: NOW },
  );
  assert.deepEqual(names(plan), [
    "000000010000000000000001",
    "000000010000000000000002.gz",
    "000000010000000000000003",
    "000000020000000000000003",
  ]);
  assert.equal(plan.oldestKept, "000000020000000000000004");
  assert.equal(plan.keptSegments, 2);
});

test("the newest complete segment, .partial files and history files are never removed", () => {
  const plan = planCleanup(
    listing(
      [
        segment("000000010000000000000001.partial", 100),
        segment("000000010000000000000002", 90),
        segment("000000010000000000000003", 80),
        segment("000000010000000000000004.partial", 70),
      ],
      { histories: [{ fileName: "00000002.history", timeline: 2, size: 42, mtimeMs: NOW - 100 * HOUR }] },
    ),
    { before: "0000000100000000000000FF", keepMs: HOUR, now: NOW },
  );
  assert.deepEqual(names(plan), ["000000010000000000000002"]);
  assert.equal(plan.oldestKept, "000000010000000000000001");
});

test("--keep removes only a run of old segments from the oldest end, never leaving a hole", () => {
  const plan = planCleanup(
    listing([
      segment("000000010000000000000001", 30),
      segment("000000010000000000000002", 25),
      // Touched recently (a copy restored by hand): everything from here on stays.
      segment("000000010000000000000003", 1),
      segment("000000010000000000000004", 26),
      segment("000000010000000000000005", 2),
    ]),
    { keepMs: 24 * HOUR, now: NOW },
  );
  assert.deepEqual(names(plan), ["000000010000000000000001", "000000010000000000000002"]);
});

test("with --before and --keep, a segment goes only if both allow it", () => {
  const segments = [
    segment("000000010000000000000001", 30),
    segment("000000010000000000000002", 28),
    segment("000000010000000000000003", 26),
    segment("000000010000000000000004", 1),
  ];
  assert.deepEqual(
    names(
      planCleanup(listing(segments), { before: "000000010000000000000002", keepMs: 24 * HOUR, now: NOW }),
    ),
    ["000000010000000000000001"],
  );
  assert.deepEqual(
    names(
      planCleanup(listing(segments), { before: "000000010000000000000004", keepMs: 27 * HOUR, now: NOW }),
    ),
    ["000000010000000000000001", "000000010000000000000002"],
  );
});

test("a .backup file goes once the segment its backup starts in is gone", () => {
  const plan = planCleanup(
    listing(
      [
        segment("000000010000000000000001", 30),
        segment("000000010000000000000002", 20),
        segment("000000010000000000000003", 10),
      ],
      {
        backupHistories: [
          "000000010000000000000001.00000028.backup",
          "000000010000000000000002.00000060.backup",
        ],
      },
    ),
    { before: "000000010000000000000002.00000060.backup", now: NOW },
  );
  assert.deepEqual(names(plan), ["000000010000000000000001", "000000010000000000000001.00000028.backup"]);
});

test("--before takes WAL file names with suffixes and backup history names; anything else is refused", () => {
  assert.equal(parseCleanupBoundary("00000001000000000000000A"), "00000001000000000000000A");
  assert.equal(parseCleanupBoundary("00000001000000000000000A.gz.partial"), "00000001000000000000000A");
  assert.equal(parseCleanupBoundary("00000001000000000000000A.00000028.backup"), "00000001000000000000000A");
  for (const bad of ["", "00000001000000000000000a", "../00000001000000000000000A", "00000002.history", "x"])
    assert.equal(parseCleanupBoundary(bad), undefined, bad);
});

test("durations: a number and a unit", () => {
  assert.equal(parseDuration("90s"), 90_000);
  assert.equal(parseDuration("30min"), 30 * 60_000);
  assert.equal(parseDuration("36h"), 36 * HOUR);
  assert.equal(parseDuration("7d"), 7 * 24 * HOUR);
  assert.equal(parseDuration("1.5h"), 1.5 * HOUR);
  for (const bad of ["", "7", "d", "-1d", "7 days", "1e3s"]) assert.equal(parseDuration(bad), undefined, bad);
});

test("removal deletes exactly the planned files and tolerates one already gone", async () => {
  const directory = await mkdtemp(join(tmpdir(), "pgwal-cleanup-"));
  try {
    for (const name of ["000000010000000000000001", "000000010000000000000002", "000000010000000000000003"])
      await writeFile(join(directory, name), "x");
    await removeArchiveFiles(directory, [
      { fileName: "000000010000000000000001" },
      { fileName: "000000010000000000000009" },
    ]);
    assert.deepEqual((await readdir(directory)).sort(), [
      "000000010000000000000002",
      "000000010000000000000003",
    ]);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
});
