/**
 * restore, verify and status on archives built from a real server's WAL (1 MB segments): completed
 * segments copied from pg_wal, then damaged in the ways that matter for recovery.
 */
import assert from "node:assert/strict";
import { cp, link, mkdir, mkdtemp, readdir, readFile, rm, stat, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import { RESTORE_EXIT, restoreExitCode, restoreFile } from "../../src/archive/restore.js";
import { archiveStatus, formatArchiveStatus } from "../../src/archive/status.js";
import { formatVerifyReport, verifyArchive, verifyReportJson } from "../../src/archive/verify.js";
import { ArchiveError } from "../../src/errors.js";
import { formatLsn, parseLsn, segmentStartLsn } from "../../src/lsn.js";
import type { SegmentEncoder } from "../../src/wal/compressed-storage.js";
import { GzipSegmentEncoder } from "../../src/wal/gzip-storage.js";
import { lz4CompressFrame } from "../../src/wal/lz4-frame.js";
import { Lz4SegmentEncoder } from "../../src/wal/lz4-storage.js";
import { parseWalFileName, walFileName } from "../../src/wal/names.js";
import { ZstdSegmentEncoder, zstdAvailable } from "../../src/wal/zstd-storage.js";
import { PgCluster, startSharedCluster } from "../support/cluster.js";

const SEGMENT_SIZE = 1024 * 1024;
const PAGE = 8192;

let cluster: PgCluster;
let other: PgCluster;
/** Completed, contiguous timeline-1 segments of `cluster`, oldest first. */
let segmentNames: string[];
let pristine: string;
const scratch: string[] = [];

async function completedSegments(server: PgCluster): Promise<string[]> {
  const current = await server.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
  const names = (await server.sql("SELECT name FROM pg_ls_waldir() ORDER BY name"))
    .split("\n")
    .filter((name) => /^[0-9A-F]{24}$/.test(name) && name < current);
  // Keep the contiguous run that ends right before the current segment.
  const run: string[] = [];
  let expected = parseWalFileName(current, SEGMENT_SIZE)!.segNo - 1n;
  for (const name of names.reverse()) {
    if (parseWalFileName(name, SEGMENT_SIZE)!.segNo !== expected) break;
    run.unshift(name);
    expected--;
  }
  return run;
}

async function tempDir(label: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `pgwal-${label}-`));
  scratch.push(dir);
  return dir;
}

/** A fresh copy of the pristine archive to damage. */
async function archiveCopy(): Promise<string> {
  const dir = await tempDir("archive");
  await cp(pristine, dir, { recursive: true });
  return dir;
}

function kinds(report: { problems: { kind: string; file?: string }[] }): string[] {
  return report.problems.map((problem) => `${problem.kind}:${problem.file ?? ""}`);
}

before(async () => {
  cluster = await startSharedCluster({
    name: "archive",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "256MB" },
  });
  await cluster.generateWal(5);
  segmentNames = await completedSegments(cluster);
  assert.ok(segmentNames.length >= 5, `expected at least 5 completed segments, got ${segmentNames}`);
  pristine = await tempDir("pristine");
  for (const name of segmentNames)
    await writeFile(join(pristine, name), await readFile(cluster.walPath(name)));
});

after(async () => {
  await other?.destroy();
  for (const dir of scratch) await rm(dir, { recursive: true, force: true });
});

describe("verify", () => {
  test("passes on a real archive and describes it", async () => {
    const report = await verifyArchive(pristine);
    assert.deepEqual(report.problems, [], formatVerifyReport(report));
    assert.equal(report.ok, true);
    assert.equal(report.segmentSize, SEGMENT_SIZE);
    assert.equal(report.filesChecked, segmentNames.length);
    assert.equal(
      report.systemIdentifier,
      await cluster.sql("SELECT system_identifier FROM pg_control_system()"),
    );
    assert.deepEqual(
      report.timelines.map((t) => [t.timeline, t.segments, t.firstSegment, t.lastSegment]),
      [[1, segmentNames.length, segmentNames[0], segmentNames.at(-1)]],
    );
    assert.equal(JSON.parse(verifyReportJson(report)).ok, true);
    assert.match(formatVerifyReport(report), /: OK\n/);
  });

  test("--from/--to: a range inside the archive is complete, one past its end is not", async () => {
    const first = parseWalFileName(segmentNames[0]!, SEGMENT_SIZE)!.segNo;
    const last = parseWalFileName(segmentNames.at(-1)!, SEGMENT_SIZE)!.segNo;
    const inside = await verifyArchive(pristine, {
      from: segmentStartLsn(first, SEGMENT_SIZE) + 100n,
      to: segmentStartLsn(last + 1n, SEGMENT_SIZE),
    });
    assert.equal(inside.ok, true, formatVerifyReport(inside));
    assert.deepEqual(inside.range?.missing, []);
    const beyond = await verifyArchive(pristine, {
      from: segmentStartLsn(last, SEGMENT_SIZE),
      to: segmentStartLsn(last + 2n, SEGMENT_SIZE) - 1n,
    });
    assert.equal(beyond.ok, false);
    assert.deepEqual(beyond.range?.missing, [walFileName(1, last + 1n, SEGMENT_SIZE)]);
    assert.deepEqual(kinds(beyond), ["range:"]);
  });

  test("catches a flipped byte in a page header", async () => {
    const dir = await archiveCopy();
    const victim = segmentNames[2]!;
    const path = join(dir, victim);
    const bytes = await readFile(path);
    bytes[3 * PAGE + 9]! ^= 0x01; // xlp_pageaddr of page 3
    bytes[7 * PAGE]! ^= 0x40; // xlp_magic of page 7
    await writeFile(path, bytes);
    const report = await verifyArchive(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), [`page-header:${victim}`, `page-header:${victim}`]);
    assert.match(report.problems[0]!.message, /page 3: page address/);
    assert.match(report.problems[1]!.message, /page 7: WAL page magic/);
  });

  test("catches a missing segment", async () => {
    const dir = await archiveCopy();
    await rm(join(dir, segmentNames[2]!));
    const report = await verifyArchive(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), [`gap:${segmentNames[2]}`]);
    assert.match(report.problems[0]!.message, /is missing/);
  });

  test("catches a truncated file, plain or compressed", async () => {
    const dir = await archiveCopy();
    await truncate(join(dir, segmentNames[1]!), 500_000);
    const compressed = segmentNames[3]!;
    const gz = gzipSync(await readFile(join(dir, compressed)));
    await rm(join(dir, compressed));
    await writeFile(join(dir, `${compressed}.gz`), gz.subarray(0, gz.length >> 1));
    const report = await verifyArchive(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), [`size:${segmentNames[1]}`, `unreadable:${compressed}.gz`]);
  });

  test("catches a segment of another cluster", async () => {
    other = await PgCluster.start({ name: "archive-other", walSegmentSizeMb: 1 });
    await other.generateWal(1);
    const theirs = await completedSegments(other);
    const shared = segmentNames.filter((name) => theirs.includes(name));
    assert.ok(shared.length > 0, `no segment name in common: ${segmentNames} / ${theirs}`);
    const dir = await archiveCopy();
    await writeFile(join(dir, shared[0]!), await readFile(other.walPath(shared[0]!)));
    const report = await verifyArchive(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report), [`system-identifier:${shared[0]}`]);
  });

  test("a tli-2 segment needs its history file, and its pages must be on that history", async () => {
    const dir = await archiveCopy();
    const last = segmentNames.at(-1)!;
    const segNo = parseWalFileName(last, SEGMENT_SIZE)!.segNo;
    const fabricated = walFileName(2, segNo, SEGMENT_SIZE);
    await writeFile(join(dir, fabricated), await readFile(join(dir, last)));
    const report = await verifyArchive(dir);
    assert.equal(report.ok, false);
    assert.deepEqual(kinds(report).sort(), ["missing-history:00000002.history", `timeline:${fabricated}`]);
    assert.match(
      report.problems.find((p) => p.kind === "timeline")!.message,
      /timeline 1 is not in the history/,
    );

    // With a history saying timeline 2 branched off at that segment's start, the same file is fine,
    // and timeline 1's copy of it lies past the switch point (an abandoned branch, not an error).
    const switchpoint = formatLsn(segmentStartLsn(segNo, SEGMENT_SIZE));
    await writeFile(join(dir, "00000002.history"), `1\t${switchpoint}\tno recovery target specified\n`);
    const fixed = await verifyArchive(dir);
    assert.deepEqual(fixed.problems, [], formatVerifyReport(fixed));
    assert.equal(fixed.targetTimeline, 2);
    assert.ok(
      fixed.notes.some((note) => note.includes(`${last} lies after`)),
      fixed.notes.join("\n"),
    );

    // Dropping the timeline-1 segment before the switch is a gap on the way to timeline 2.
    await rm(join(dir, segmentNames.at(-2)!));
    const gap = await verifyArchive(dir);
    assert.deepEqual(kinds(gap), [`gap:${segmentNames.at(-2)}`]);
  });

  test("reports partial segments and stray files without failing", async () => {
    const dir = await archiveCopy();
    const last = segmentNames.at(-1)!;
    const content = await readFile(join(dir, last));
    await rm(join(dir, last));
    await writeFile(join(dir, `${last}.partial`), content.subarray(0, 40 * PAGE));
    await writeFile(join(dir, "notes.txt"), "hello");
    const report = await verifyArchive(dir);
    assert.deepEqual(report.problems, [], formatVerifyReport(report));
    assert.deepEqual(report.strayFiles, ["notes.txt"]);
    const lastStart = segmentStartLsn(parseWalFileName(last, SEGMENT_SIZE)!.segNo, SEGMENT_SIZE);
    assert.deepEqual(report.partialSegments, [
      { file: `${last}.partial`, timeline: 1, dataEnd: formatLsn(lastStart + BigInt(40 * PAGE)) },
    ]);
  });
});

describe("status", () => {
  test("summarises timelines, LSN range, sizes, the partial segment and the age", async () => {
    const dir = await archiveCopy();
    const last = segmentNames.at(-1)!;
    const content = await readFile(join(dir, last));
    await rm(join(dir, last));
    // A compressed partial holds only the written prefix.
    await writeFile(join(dir, `${last}.gz.partial`), gzipSync(content.subarray(0, 32 * PAGE)));
    const now = Date.now() + 5000;
    const status = await archiveStatus(dir, { now });
    const firstSegNo = parseWalFileName(segmentNames[0]!, SEGMENT_SIZE)!.segNo;
    const lastStart = segmentStartLsn(parseWalFileName(last, SEGMENT_SIZE)!.segNo, SEGMENT_SIZE);
    assert.equal(status.segmentSize, SEGMENT_SIZE);
    assert.equal(status.segmentCount, segmentNames.length - 1);
    assert.equal(status.partialCount, 1);
    assert.equal(status.firstLsn, formatLsn(segmentStartLsn(firstSegNo, SEGMENT_SIZE)));
    assert.equal(status.lastLsn, formatLsn(lastStart + BigInt(32 * PAGE)));
    assert.deepEqual(status.partial, {
      file: `${last}.gz.partial`,
      timeline: 1,
      pagesUsed: 32,
      usedBytes: 32 * PAGE,
      fraction: (32 * PAGE) / SEGMENT_SIZE,
    });
    assert.equal(status.timelines.length, 1);
    assert.equal(status.timelines[0]!.lastSegment, last);
    let bytes = 0;
    for (const name of await readdir(dir)) bytes += (await stat(join(dir, name))).size;
    assert.equal(status.totalBytes, bytes);
    assert.ok(
      status.ageSeconds !== null && status.ageSeconds >= 4 && status.ageSeconds < 120,
      `${status.ageSeconds}`,
    );
    assert.match(formatArchiveStatus(status), /partial .*\.gz\.partial: 256\.0 kB used \(25\.0%\)/);
  });

  test("an empty directory has no WAL", async () => {
    const status = await archiveStatus(await tempDir("empty"));
    assert.equal(status.segmentSize, null);
    assert.equal(status.segmentCount, 0);
    assert.equal(status.lastLsn, null);
  });
});

describe("restore", () => {
  let archive: string;
  let target: string;
  let plain: string;
  let gz: string;
  let lz4: string;
  let partialName: string;
  let gzPartialName: string;

  before(async () => {
    archive = await tempDir("restore-archive");
    target = await tempDir("restore-target");
    [plain, gz, lz4, partialName, gzPartialName] = segmentNames as [string, string, string, string, string];
    await writeFile(join(archive, plain), await readFile(join(pristine, plain)));
    await writeFile(join(archive, `${gz}.gz`), gzipSync(await readFile(join(pristine, gz))));
    await writeFile(join(archive, `${lz4}.lz4`), lz4CompressFrame(await readFile(join(pristine, lz4))));
    await writeFile(
      join(archive, `${partialName}.partial`),
      (await readFile(join(pristine, partialName))).subarray(0, 100 * PAGE),
    );
    await writeFile(
      join(archive, `${gzPartialName}.gz.partial`),
      gzipSync((await readFile(join(pristine, gzPartialName))).subarray(0, 20 * PAGE + 123)),
    );
  });

  for (const [label, pick, suffix] of [
    ["plain", () => plain, ""],
    ["gzip", () => gz, ".gz"],
    ["lz4", () => lz4, ".lz4"],
  ] as const) {
    test(`restores a ${label} segment byte for byte`, async () => {
      const name = pick();
      const destination = join(target, `${label}-RECOVERYXLOG`);
      const result = await restoreFile(archive, name, destination);
      assert.deepEqual(result, { status: "restored", source: name + suffix, bytes: SEGMENT_SIZE });
      assert.ok((await readFile(destination)).equals(await readFile(join(pristine, name))));
      assert.equal(restoreExitCode(result), RESTORE_EXIT.restored);
    });
  }

  test("a partial (plain or compressed) stands in for NAME, padded with zeros", async () => {
    for (const [name, source, kept] of [
      [partialName, `${partialName}.partial`, 100 * PAGE],
      [gzPartialName, `${gzPartialName}.gz.partial`, 20 * PAGE + 123],
    ] as const) {
      const destination = join(target, `partial-${name}`);
      assert.deepEqual(await restoreFile(archive, name, destination), {
        status: "restored",
        source,
        bytes: SEGMENT_SIZE,
      });
      const restored = await readFile(destination);
      const original = await readFile(join(pristine, name));
      assert.equal(restored.length, SEGMENT_SIZE);
      assert.ok(restored.subarray(0, kept).equals(original.subarray(0, kept)));
      assert.ok(restored.subarray(kept).every((byte) => byte === 0));
    }
  });

  test("partials the receiver's encoders leave behind (flushed, unfinished streams) are restored", async () => {
    const name = segmentNames[1]!;
    const original = await readFile(join(pristine, name));
    const kept = 50 * PAGE + 777;
    const encoders: [string, (emit: (output: Uint8Array) => void) => SegmentEncoder][] = [
      [".gz.partial", (emit) => new GzipSegmentEncoder(undefined, emit)],
      [".lz4.partial", (emit) => new Lz4SegmentEncoder(emit)],
    ];
    for (const [suffix, create] of encoders) {
      const dir = await tempDir("restore-streamed");
      const pieces: Uint8Array[] = [];
      const encoder = create((output) => pieces.push(Buffer.from(output)));
      if (encoder.header) pieces.push(encoder.header);
      await encoder.write([original.subarray(0, kept)]);
      await encoder.flush();
      encoder.destroy();
      await writeFile(join(dir, name + suffix), Buffer.concat(pieces));
      const destination = join(target, `streamed${suffix}`);
      assert.deepEqual(await restoreFile(dir, name, destination), {
        status: "restored",
        source: name + suffix,
        bytes: SEGMENT_SIZE,
      });
      const restored = await readFile(destination);
      assert.ok(restored.subarray(0, kept).equals(original.subarray(0, kept)), suffix);
      assert.ok(
        restored.subarray(kept).every((byte) => byte === 0),
        suffix,
      );
    }
  });

  test("zstd (pgwal's own): a complete .zst and a flushed .zst.partial are restored", {
    skip: zstdAvailable() ? false : "this Node.js has no zstd",
  }, async () => {
    const name = segmentNames[2]!;
    const original = await readFile(join(pristine, name));
    const kept = 30 * PAGE + 5;
    for (const [suffix, content, end] of [
      [".zst", original, SEGMENT_SIZE],
      [".zst.partial", original.subarray(0, kept), kept],
    ] as const) {
      const dir = await tempDir("restore-zstd");
      const pieces: Uint8Array[] = [];
      const encoder = new ZstdSegmentEncoder({ level: 1 }, (output) => pieces.push(Buffer.from(output)));
      await encoder.write([content]);
      if (suffix === ".zst") await encoder.finish();
      else await encoder.flush();
      encoder.destroy();
      await writeFile(join(dir, name + suffix), Buffer.concat(pieces));
      const destination = join(target, `zstd${suffix}`);
      assert.deepEqual(await restoreFile(dir, name, destination), {
        status: "restored",
        source: name + suffix,
        bytes: SEGMENT_SIZE,
      });
      const restored = await readFile(destination);
      assert.ok(restored.subarray(0, end).equals(original.subarray(0, end)), suffix);
      assert.ok(
        restored.subarray(end).every((byte) => byte === 0),
        suffix,
      );
    }
  });

  test("a file that is not archived is 'missing' and nothing is written", async () => {
    const destination = join(target, "missing");
    const name = walFileName(
      1,
      parseWalFileName(segmentNames.at(-1)!, SEGMENT_SIZE)!.segNo + 10n,
      SEGMENT_SIZE,
    );
    const result = await restoreFile(archive, name, destination);
    assert.deepEqual(result, { status: "missing" });
    assert.equal(restoreExitCode(result), RESTORE_EXIT.missing);
    assert.deepEqual(await restoreFile(archive, "00000005.history", destination), { status: "missing" });
    await assert.rejects(stat(destination), { code: "ENOENT" });
  });

  test("corrupt files are errors, and leave neither the destination nor a temp file", async () => {
    const dir = await tempDir("restore-corrupt");
    const out = await tempDir("restore-corrupt-out");
    const flipped = await readFile(join(pristine, plain));
    flipped[5 * PAGE + 12]! ^= 0xff;
    await writeFile(join(dir, plain), flipped);
    const gzBytes = gzipSync(await readFile(join(pristine, gz)));
    gzBytes[gzBytes.length >> 1]! ^= 0xff;
    await writeFile(join(dir, `${gz}.gz`), gzBytes);
    await writeFile(join(dir, lz4), (await readFile(join(pristine, lz4))).subarray(0, SEGMENT_SIZE - PAGE));
    for (const name of [plain, gz, lz4]) {
      let caught: unknown;
      await assert.rejects(
        restoreFile(dir, name, join(out, "RECOVERYXLOG")).catch((error: unknown) => {
          caught = error;
          throw error;
        }),
        ArchiveError,
        name,
      );
      assert.equal(restoreExitCode(caught), RESTORE_EXIT.failed);
    }
    assert.deepEqual(await readdir(out), []);
  });

  test("replaces the destination by rename, never by writing into it", async () => {
    const destination = join(target, "RECOVERYXLOG");
    await writeFile(destination, "old content");
    const otherLink = join(target, "old-link");
    await link(destination, otherLink);
    await restoreFile(archive, plain, destination);
    assert.equal(await readFile(otherLink, "utf8"), "old content");
    assert.equal((await stat(destination)).size, SEGMENT_SIZE);
    assert.deepEqual(
      (await readdir(target)).filter((name) => name.includes("pgwal-restore")),
      [],
      "no temp file left",
    );
  });

  test("restores timeline history files verbatim and refuses corrupt ones", async () => {
    const history = "1\t0/3000000\tno recovery target specified\n";
    await writeFile(join(archive, "00000002.history"), history);
    const destination = join(target, "RECOVERYHISTORY");
    assert.deepEqual(await restoreFile(archive, "00000002.history", destination), {
      status: "restored",
      source: "00000002.history",
      bytes: history.length,
    });
    assert.equal(await readFile(destination, "utf8"), history);
    await writeFile(join(archive, "00000003.history"), "garbage here\n");
    await assert.rejects(restoreFile(archive, "00000003.history", join(target, "h3")), ArchiveError);
    await mkdir(join(target, "sub"), { recursive: true });
    await assert.rejects(restoreFile(archive, "../x", join(target, "sub", "x")), /invalid WAL file name/);
  });
});

// parseLsn is used by the CLI for --from/--to; make sure the formats round-trip with what verify prints.
test("range LSNs in the report use PostgreSQL's text form", async () => {
  const first = parseWalFileName(segmentNames[0]!, SEGMENT_SIZE)!.segNo;
  const from = segmentStartLsn(first, SEGMENT_SIZE);
  const report = await verifyArchive(pristine, { from, to: from + 1n });
  assert.equal(parseLsn(report.range!.from), from);
  assert.equal(report.range!.to, formatLsn(from + 1n));
});
