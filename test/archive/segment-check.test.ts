/** Page-header checks on synthetic segments, recovery paths, and restore's candidate names and exit codes. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { RESTORE_EXIT, restoreExitCode, segmentCandidates } from "../../src/archive/restore.js";
import { checkSegmentContent } from "../../src/archive/segment-check.js";
import { expectedTimelineOf, isOnPath, recoveryPath } from "../../src/archive/timeline-histories.js";
import { ArchiveError } from "../../src/errors.js";
import { parseLsn } from "../../src/lsn.js";
import { walFileName } from "../../src/wal/names.js";

const SEGMENT = 1 << 20;
const PAGE = 8192;
const MAGIC_15 = 0xd110;
const SYSID = 7_300_000_000_000_000_001n;

/** A segment whose pages carry valid headers up to `usedPages`, zeros after; `tliOf` gives each page's timeline. */
function segment(
  segNo: bigint,
  usedPages = SEGMENT / PAGE,
  tliOf: (page: number) => number = () => 1,
): Buffer {
  const bytes = Buffer.alloc(SEGMENT);
  for (let page = 0; page < usedPages; page++) {
    const at = page * PAGE;
    bytes.writeUInt16LE(MAGIC_15, at);
    bytes.writeUInt16LE(page === 0 ? 0x0002 : 0, at + 2);
    bytes.writeUInt32LE(tliOf(page), at + 4);
    bytes.writeBigUInt64LE(segNo * BigInt(SEGMENT) + BigInt(at), at + 8);
    if (page === 0) {
      bytes.writeBigUInt64LE(SYSID, 24);
      bytes.writeUInt32LE(SEGMENT, 32);
      bytes.writeUInt32LE(PAGE, 36);
    }
    bytes.fill(0xab, at + 40, at + 100); // some record bytes
  }
  return bytes;
}

test("a valid segment passes and yields its facts", () => {
  const check = checkSegmentContent(segment(5n), {
    walFileName: walFileName(1, 5n, SEGMENT),
    partial: false,
  });
  assert.deepEqual(check.problems, []);
  assert.equal(check.segmentSize, SEGMENT);
  assert.equal(check.segNo, 5n);
  assert.equal(check.systemIdentifier, SYSID);
  assert.equal(check.lastNonZeroPage, SEGMENT / PAGE - 1);
  assert.equal(check.dataEnd, 6n * BigInt(SEGMENT));
  assert.deepEqual(check.pageTimelines, [1]);
});

test("wrong position, magic and size are reported per page", () => {
  const misplaced = checkSegmentContent(segment(5n), {
    walFileName: walFileName(1, 6n, SEGMENT),
    partial: false,
  });
  assert.equal(misplaced.problems[0]!.kind, "page-header");
  assert.match(misplaced.problems[0]!.message, /page 0: page address 0\/500000, expected 0\/600000/);
  // 128 wrong pages: capped at 8 messages plus a count.
  assert.equal(misplaced.problems.length, 9);
  assert.match(misplaced.problems.at(-1)!.message, /and 120 more/);

  const bytes = segment(5n);
  bytes.writeUInt16LE(0x1234, 9 * PAGE);
  const badMagic = checkSegmentContent(bytes, { walFileName: walFileName(1, 5n, SEGMENT), partial: false });
  assert.deepEqual(
    badMagic.problems.map((p) => p.message),
    ["page 9: WAL page magic 0x1234, expected 0xD110"],
  );

  const short = checkSegmentContent(segment(5n).subarray(0, SEGMENT - 100), {
    walFileName: walFileName(1, 5n, SEGMENT),
    partial: false,
  });
  assert.deepEqual(
    short.problems.map((p) => p.kind),
    ["size"],
  );

  const unknown = segment(5n);
  unknown.writeUInt16LE(0xbeef, 0);
  assert.match(
    checkSegmentContent(unknown, { walFileName: walFileName(1, 5n, SEGMENT), partial: false }).problems[0]!
      .message,
    /unknown WAL page magic 0xBEEF/,
  );
});

test("partials may be short and end in zeros, but not have holes", () => {
  const name = walFileName(1, 5n, SEGMENT);
  const prefix = segment(5n, 10).subarray(0, 9 * PAGE + 10); // ends inside page 9's header
  const check = checkSegmentContent(prefix, { walFileName: name, partial: true });
  assert.deepEqual(check.problems, []);
  assert.equal(check.lastNonZeroPage, 9);
  assert.equal(check.dataEnd, 5n * BigInt(SEGMENT) + BigInt(10 * PAGE));

  const padded = checkSegmentContent(segment(5n, 10), { walFileName: name, partial: true });
  assert.deepEqual(padded.problems, []);
  const notPartial = checkSegmentContent(segment(5n, 10), { walFileName: name, partial: false });
  assert.deepEqual(notPartial.problems, []); // zero pages after the WAL end are allowed, size is right

  const holed = segment(5n, 10);
  holed.fill(0, 4 * PAGE, 5 * PAGE);
  assert.deepEqual(
    checkSegmentContent(holed, { walFileName: name, partial: true }).problems.map((p) => p.kind),
    ["zero-page"],
  );
  const empty = checkSegmentContent(Buffer.alloc(0), { walFileName: name, partial: true });
  assert.deepEqual(empty.problems, []);
  assert.equal(empty.lastNonZeroPage, -1);
  assert.deepEqual(
    checkSegmentContent(Buffer.alloc(SEGMENT), { walFileName: name, partial: false }).problems.map(
      (p) => p.kind,
    ),
    ["size"],
  );
});

test("page timelines must be on the file's history and never go back", () => {
  const name = walFileName(2, 5n, SEGMENT);
  const switched = segment(5n, 128, (page) => (page < 40 ? 1 : 2));
  assert.deepEqual(
    checkSegmentContent(switched, { walFileName: name, partial: false, allowedTimelines: new Set([1, 2]) })
      .problems,
    [],
  );
  const noHistory = checkSegmentContent(switched, {
    walFileName: name,
    partial: false,
    allowedTimelines: new Set([2]),
  });
  assert.deepEqual(
    noHistory.problems.map((p) => p.message),
    ["page 0: timeline 1 is not in the history of timeline 2"],
  );
  const backwards = segment(5n, 128, (page) => (page < 40 ? 2 : 1));
  assert.match(
    checkSegmentContent(backwards, { walFileName: name, partial: false }).problems[0]!.message,
    /page 40: timeline 1 goes back from 2/,
  );
  const ahead = checkSegmentContent(
    segment(5n, 128, () => 3),
    { walFileName: name, partial: false },
  );
  assert.match(ahead.problems[0]!.message, /timeline 3 is after the file's timeline 2/);
});

test("recovery paths: the switch segment belongs to both timelines", () => {
  const atBoundary = recoveryPath(
    2,
    [{ timeline: 1, switchpoint: parseLsn("0/300000"), reason: "" }],
    SEGMENT,
  );
  assert.deepEqual(
    atBoundary.map((span) => [span.timeline, span.firstSegNo, span.lastSegNo]),
    [
      [1, 0n, 2n],
      [2, 3n, undefined],
    ],
  );
  const inside = recoveryPath(
    3,
    [
      { timeline: 1, switchpoint: parseLsn("0/300100"), reason: "" },
      { timeline: 2, switchpoint: parseLsn("0/500000"), reason: "" },
    ],
    SEGMENT,
  );
  assert.ok(isOnPath(inside, 1, 3n));
  assert.ok(isOnPath(inside, 2, 3n));
  assert.ok(!isOnPath(inside, 1, 4n));
  assert.ok(!isOnPath(inside, 2, 5n));
  assert.ok(isOnPath(inside, 3, 5n));
  assert.deepEqual(
    [0n, 3n, 4n, 5n, 9n].map((segNo) => expectedTimelineOf(inside, segNo)),
    [1, 2, 2, 3, 3],
  );
});

test("restore looks for complete files before partial ones, and maps outcomes to exit codes", () => {
  const name = "000000010000000000000005";
  assert.deepEqual(segmentCandidates(name), [
    name,
    `${name}.gz`,
    `${name}.lz4`,
    `${name}.zst`,
    `${name}.partial`,
    `${name}.gz.partial`,
    `${name}.lz4.partial`,
    `${name}.zst.partial`,
  ]);
  assert.equal(restoreExitCode({ status: "restored", source: name, bytes: 1 }), 0);
  assert.equal(restoreExitCode({ status: "missing" }), 1);
  assert.equal(restoreExitCode(new ArchiveError("corrupt")), 128);
  // Recovery reads 1-125 as "not in the archive" and ends early; only a status above 125 stops it.
  assert.ok(RESTORE_EXIT.failed > 125, "a failed restore must stop the recovery");
  assert.ok(![126, 127].includes(RESTORE_EXIT.failed), "126/127 read as a shell error in the server log");
});
