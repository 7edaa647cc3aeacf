/** The WAL record reader on hand-built bytes: layout, continuation, switches, and every kind of damage. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ArchiveError } from "../../../src/errors.js";
import { formatLsn } from "../../../src/lsn.js";
import type { WalRecordEvent } from "../../../src/wal/records/record-events.js";
import type { WalReadStop } from "../../../src/wal/records/record-problem.js";
import { WalRecordReader } from "../../../src/wal/records/record-reader.js";
import { propertySettings } from "../../support/property-runs.js";
import { encodeRecord, i64, mainDataBody, PAGE, type RecordSpec, u32, WalBuilder } from "./wal-builder.js";

const SEGMENT = 1 << 20;

function filler(length: number, seed = 1): RecordSpec {
  const main = Buffer.alloc(length);
  for (let i = 0; i < length; i++) main[i] = (i * 31 + seed) & 0xff;
  return { rmid: 10, info: 0, xid: 700 + seed, body: mainDataBody(main) };
}

interface ReadResult {
  lsns: bigint[];
  events: WalRecordEvent[];
  stops: WalReadStop[];
}

/** Feeds `stream` (starting at `start`) in pieces of `pagesPerFeed` pages. */
function readAll(stream: Buffer, start: bigint, pagesPerFeed = Number.POSITIVE_INFINITY): ReadResult {
  const result: ReadResult = { lsns: [], events: [], stops: [] };
  const reader = new WalRecordReader({
    segmentSize: SEGMENT,
    onRecord: (record) => result.lsns.push(record.lsn),
    onEvent: (event) => result.events.push(event),
  });
  const step = Math.min(stream.length, pagesPerFeed * PAGE);
  for (let at = 0; at < stream.length; at += step) {
    const stop = reader.feed(stream.subarray(at, at + step), start + BigInt(at));
    if (stop !== undefined) result.stops.push(stop);
  }
  return result;
}

function problemOf(result: ReadResult): { kind: string; lsn: string; message: string } | undefined {
  const stop = result.stops.find((s) => s.kind === "problem");
  if (stop?.kind !== "problem") return undefined;
  return { kind: stop.problem.kind, lsn: formatLsn(stop.problem.lsn), message: stop.problem.message };
}

test("records within pages, across pages and across segments are all read and linked", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  const sizes = [10, 100, 8000, 20_000, 1_500_000, 40, 3];
  for (const [i, size] of sizes.entries()) builder.append(filler(size, i));
  const stream = builder.finish();
  assert.ok(stream.length >= 2 * SEGMENT, "a record crosses a segment boundary");
  const expected = builder.records.map((r) => r.lsn);
  for (const pagesPerFeed of [1, 3, 128, Number.POSITIVE_INFINITY]) {
    const result = readAll(stream, builder.startLsn, pagesPerFeed);
    assert.deepEqual(result.lsns, expected, `fed ${pagesPerFeed} page(s) at a time`);
    const last = builder.records.at(-1)!;
    const end = last.lsn + (BigInt(last.offsets.at(-1)! - last.offsets[0]! + 1 + 7) / 8n) * 8n;
    assert.deepEqual(result.stops[0], { kind: "end-of-wal", lsn: end });
    assert.ok(result.stops.every((stop) => stop.kind === "end-of-wal"));
  }
});

test("a record header split across a page boundary is assembled and checked", () => {
  for (const headerBytesOnFirstPage of [8, 16]) {
    const builder = new WalBuilder({ segmentSize: SEGMENT });
    // First page has 8192 - 40 bytes after the long header; fill it up to leave the wanted gap.
    builder.append(filler(PAGE - 40 - 24 - 5 - headerBytesOnFirstPage));
    const split = builder.append(filler(50, 2));
    assert.equal(Number(split.lsn % BigInt(PAGE)), PAGE - headerBytesOnFirstPage);
    builder.append(filler(60, 3));
    const result = readAll(builder.finish(), builder.startLsn, 1);
    assert.deepEqual(
      result.lsns,
      builder.records.map((r) => r.lsn),
    );
  }
});

test("a reader starting mid-stream begins at the first record that starts in the segment", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  for (let i = 0; i < 40; i++) builder.append(filler(30_000 + i * 7, i));
  const stream = builder.finish();
  const secondSegment = builder.startLsn + BigInt(SEGMENT);
  const fromSecond = readAll(stream.subarray(SEGMENT), secondSegment);
  const expected = builder.records.filter((r) => r.lsn >= secondSegment).map((r) => r.lsn);
  assert.ok(expected.length > 0);
  assert.deepEqual(fromSecond.lsns, expected);
  assert.equal(fromSecond.stops.filter((s) => s.kind === "problem").length, 0);
});

test("a stream that begins inside a record skips its continuation (xlp_rem_len) over several pages", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  builder.startWithContinuation(3 * PAGE + 100);
  builder.append(filler(500));
  builder.append(filler(20));
  const result = readAll(builder.finish(), builder.startLsn);
  assert.deepEqual(
    result.lsns,
    builder.records.map((r) => r.lsn),
  );
});

test("after XLOG_SWITCH the rest of the segment is skipped and the chain goes on in the next one", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  builder.append(filler(100));
  const switched = builder.switchSegment();
  const next = builder.append(filler(100, 2));
  assert.equal(next.lsn, builder.startLsn + BigInt(SEGMENT) + 40n);
  const stream = builder.finish();
  const result = readAll(stream, builder.startLsn);
  assert.deepEqual(
    result.lsns,
    builder.records.map((r) => r.lsn),
  );
  assert.deepEqual(
    result.events.map((e) => e.kind),
    ["switch"],
  );
  assert.equal(result.events[0]!.lsn, switched.lsn);

  stream[builder.offsetOf(switched.lsn) + 24 + 3 * PAGE] = 1;
  const damaged = readAll(stream, builder.startLsn);
  assert.equal(problemOf(damaged)?.kind, "switch-tail");
});

test("a flipped byte anywhere in a record is found at that record (CRC, length, chain, continuation or end)", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  for (let i = 0; i < 30; i++) builder.append(filler([5, 200, 9000, 70_000][i % 4]!, i));
  const clean = builder.finish();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: builder.records.length - 1 }),
      fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
      fc.integer({ min: 1, max: 255 }),
      (index, where, mask) => {
        const record = builder.records[index]!;
        const stream = Buffer.from(clean);
        const offset = record.offsets[Math.floor(where * record.length)]!;
        stream[offset]! ^= mask;
        const result = readAll(stream, builder.startLsn);
        const problem = problemOf(result);
        if (problem === undefined) {
          // xl_tot_len flipped to zero reads as the end of the WAL, there (verify calls that an early end).
          assert.deepEqual(
            result.stops[0],
            { kind: "end-of-wal", lsn: record.lsn },
            `flip at ${offset} found`,
          );
          return;
        }
        assert.equal(problem.lsn, formatLsn(record.lsn), `${problem.kind}: ${problem.message}`);
        assert.ok(["crc", "length", "prev-link", "contrecord"].includes(problem.kind), problem.kind);
      },
    ),
    propertySettings(300),
  );
});

test("a CRC mismatch is reported as such, with both values", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  builder.append(filler(100));
  const target = builder.append(filler(100, 2));
  const stream = builder.finish();
  stream[target.offsets[60]!]! ^= 0x10;
  const problem = problemOf(readAll(stream, builder.startLsn));
  assert.equal(problem?.kind, "crc");
  assert.match(problem.message, /CRC mismatch \(stored 0x[0-9a-f]{8}, computed 0x[0-9a-f]{8}\)/);
  assert.equal(problem.lsn, formatLsn(target.lsn));
});

test("a broken xl_prev chain is named at the record whose link is wrong", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  builder.append(filler(100));
  builder.append(filler(100, 2));
  const third = builder.append(filler(100, 3));
  const stream = builder.finish();
  // Rewrite xl_prev (and the CRC, so that only the link is wrong).
  const at = builder.offsetOf(third.lsn);
  const record = Buffer.from(stream.subarray(at, at + third.length));
  record.writeBigUInt64LE(builder.records[0]!.lsn, 8);
  const rebuilt = encodeRecord(
    { rmid: record[17]!, info: record[16]!, xid: record.readUInt32LE(4), body: record.subarray(24) },
    builder.records[0]!.lsn,
  );
  rebuilt.copy(stream, at);
  const problem = problemOf(readAll(stream, builder.startLsn));
  assert.equal(problem?.kind, "prev-link");
  assert.equal(problem.lsn, formatLsn(third.lsn));
  assert.match(problem.message, /broken chain/);
});

test("impossible lengths are refused; a zero length is the end of the WAL", () => {
  for (const [length, expected] of [
    [10, "length"],
    [0x7fff_ffff, "length"],
    [0, "end-of-wal"],
  ] as const) {
    const builder = new WalBuilder({ segmentSize: SEGMENT });
    builder.append(filler(100));
    const target = builder.append(filler(100, 2));
    const stream = builder.finish();
    stream.writeUInt32LE(length, builder.offsetOf(target.lsn));
    const result = readAll(stream, builder.startLsn);
    assert.equal(result.lsns.length, 1);
    if (expected === "end-of-wal") assert.deepEqual(result.stops[0], { kind: "end-of-wal", lsn: target.lsn });
    else assert.equal(problemOf(result)?.kind, "length");
  }
});

test("a continuation page with a wrong xlp_rem_len or without the flag is a contrecord problem", () => {
  for (const damage of ["rem_len", "flag"] as const) {
    const builder = new WalBuilder({ segmentSize: SEGMENT });
    const big = builder.append(filler(3 * PAGE));
    const stream = builder.finish();
    const secondPage = PAGE;
    if (damage === "rem_len") stream.writeUInt32LE(stream.readUInt32LE(secondPage + 16) + 8, secondPage + 16);
    else stream.writeUInt16LE(0, secondPage + 2);
    const problem = problemOf(readAll(stream, builder.startLsn));
    assert.equal(problem?.kind, "contrecord", damage);
    assert.equal(problem.lsn, formatLsn(big.lsn));
  }
});

test("a page where a record should begin but that says it continues one is refused", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  builder.append(filler(PAGE - 40 - 24 - 5)); // ends exactly at the end of the first page
  builder.append(filler(50, 2));
  const stream = builder.finish();
  assert.equal(builder.offsetOf(builder.records[1]!.lsn), PAGE + 24);
  stream.writeUInt16LE(1, PAGE + 2);
  stream.writeUInt32LE(8, PAGE + 16);
  assert.equal(problemOf(readAll(stream, builder.startLsn))?.kind, "contrecord");
});

test("page headers that do not belong (address, magic, system identifier, missing long header) are named", () => {
  const damages: Array<[string, (stream: Buffer) => void, RegExp]> = [
    ["address", (s) => s.writeBigUInt64LE(0x5000000n, 3 * PAGE + 8), /page address/],
    ["magic", (s) => s.writeUInt16LE(0xd113, 2 * PAGE), /page magic/],
    ["system identifier", (s) => s.writeBigUInt64LE(1n, SEGMENT + 24), /another cluster/],
    ["long header", (s) => s.writeUInt16LE(0, SEGMENT + 2), /no long page header/],
  ];
  for (const [name, damage, message] of damages) {
    const builder = new WalBuilder({ segmentSize: SEGMENT });
    for (let i = 0; i < 20; i++) builder.append(filler(70_000, i));
    const stream = builder.finish();
    damage(stream);
    const problem = problemOf(readAll(stream, builder.startLsn));
    assert.equal(problem?.kind, "page", name);
    assert.match(problem.message, message, name);
  }
});

test("WAL pages of another size are refused with a clear error", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT, blockSize: 16384 });
  builder.append(filler(100));
  const reader = new WalRecordReader({ segmentSize: SEGMENT });
  assert.throws(
    () => reader.feed(builder.finish(), builder.startLsn),
    (error: unknown) =>
      error instanceof ArchiveError && /WAL page size 16384.*only 8192-byte/.test(error.message),
  );
});

test("after a crash inside a record, an overwrite-contrecord page drops the unfinished record", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  builder.append(filler(100));
  const stream = builder.finish();
  // An unfinished record from the end of the first page's data onto the second page.
  const unfinished = new WalBuilder({ segmentSize: SEGMENT });
  unfinished.append(filler(100));
  const aborted = unfinished.append(filler(PAGE, 9));
  unfinished.finish().copy(stream, 0, 0, PAGE);
  // The second page: XLP_FIRST_IS_OVERWRITE_CONTRECORD, then a record linked to the last complete one.
  stream.fill(0, PAGE, 2 * PAGE);
  stream.writeUInt16LE(0xd110, PAGE);
  stream.writeUInt16LE(0x0008, PAGE + 2);
  stream.writeUInt32LE(1, PAGE + 4);
  stream.writeBigUInt64LE(BigInt(SEGMENT + PAGE), PAGE + 8);
  encodeRecord(filler(40, 4), unfinished.records[0]!.lsn).copy(stream, PAGE + 24);
  const result = readAll(stream, BigInt(SEGMENT));
  assert.ok(aborted.lsn < BigInt(SEGMENT + PAGE));
  assert.deepEqual(result.lsns, [unfinished.records[0]!.lsn, BigInt(SEGMENT + PAGE + 24)]);
  assert.equal(problemOf(result), undefined);
});

test("transaction ends, restore points, checkpoints and backup end are decoded", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  const time = 849_000_000_123_456n;
  const commitMain = Buffer.concat([i64(time), Buffer.alloc(4)]);
  // A commit with an origin and a top-level xid header before its main data.
  const commit = builder.append({
    rmid: 1,
    info: 0x00,
    xid: 801,
    body: mainDataBody(commitMain, Buffer.from([253, 1, 0, 252, 5, 0, 0, 0])),
  });
  // An abort with a block reference (image with a hole, compressed in the 15+ sense, and data) first.
  const blockHeader = Buffer.concat([
    Buffer.from([0, 0x10 | 0x20]),
    Buffer.from([3, 0]), // data_length 3
    Buffer.from([5, 0, 16, 0, 0x01 | 0x04]), // bimg_len 5, hole_offset 16, HAS_HOLE | COMPRESS_PGLZ
    Buffer.from([8, 0]), // hole_length (compressed image with a hole)
    Buffer.alloc(12), // RelFileLocator
    u32(42), // block number
  ]);
  const abortMain = i64(time + 5n);
  const abortBody = Buffer.concat([
    blockHeader,
    Buffer.from([255, abortMain.length]),
    Buffer.alloc(5, 0xee), // image
    Buffer.alloc(3, 0xdd), // block data
    abortMain,
  ]);
  const abort = builder.append({ rmid: 1, info: 0x20, xid: 802, body: abortBody });
  const name = Buffer.alloc(64);
  name.write("before-upgrade");
  const restore = builder.append({
    rmid: 0,
    info: 0x70,
    body: mainDataBody(Buffer.concat([i64(time + 9n), name])),
  });
  const checkpointMain = Buffer.alloc(88);
  checkpointMain.writeBigUInt64LE(0x1_0000_0028n, 0);
  checkpointMain.writeBigInt64LE(1_795_000_000n, 64);
  const checkpoint = builder.append({ rmid: 0, info: 0x10, body: mainDataBody(checkpointMain) });
  const backupEnd = builder.append({ rmid: 0, info: 0x50, body: mainDataBody(i64(0x3000028n)) });
  // A big commit-prepared record that spans pages: its bytes are kept across the page boundary.
  const prepared = builder.append({
    rmid: 1,
    info: 0x30,
    xid: 0,
    body: mainDataBody(Buffer.concat([i64(time + 11n), Buffer.alloc(3 * PAGE)])),
  });
  const result = readAll(builder.finish(), builder.startLsn, 1);
  assert.deepEqual(result.events, [
    { kind: "commit", lsn: commit.lsn, xid: 801, time },
    { kind: "abort", lsn: abort.lsn, xid: 802, time: time + 5n },
    { kind: "restore-point", lsn: restore.lsn, time: time + 9n, name: "before-upgrade" },
    { kind: "checkpoint", lsn: checkpoint.lsn, shutdown: false, redo: 0x1_0000_0028n, time: 1_795_000_000n },
    { kind: "backup-end", lsn: backupEnd.lsn, backupStart: 0x3000028n },
    { kind: "commit-prepared", lsn: prepared.lsn, xid: 0, time: time + 11n },
  ]);
});

test("a commit whose block headers do not add up to xl_tot_len is a content problem", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  // Main data length says 20, but only 8 bytes follow.
  const target = builder.append({ rmid: 1, info: 0, body: Buffer.concat([Buffer.from([255, 20]), i64(1n)]) });
  const problem = problemOf(readAll(builder.finish(), builder.startLsn));
  assert.equal(problem?.kind, "content");
  assert.equal(problem.lsn, formatLsn(target.lsn));
});

test("any way of cutting the stream into whole pages reads the same records", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  for (let i = 0; i < 60; i++) builder.append(filler((i * 7919) % 40_000, i));
  const stream = builder.finish();
  const expected = builder.records.map((r) => r.lsn);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 30 }), (cuts) => {
      const lsns: bigint[] = [];
      const reader = new WalRecordReader({ segmentSize: SEGMENT, onRecord: (r) => lsns.push(r.lsn) });
      let page = 0;
      let index = 0;
      const pages = stream.length / PAGE;
      while (page < pages) {
        const take = Math.min(cuts[index++ % cuts.length]!, pages - page);
        const stop = reader.feed(
          stream.subarray(page * PAGE, (page + take) * PAGE),
          builder.startLsn + BigInt(page * PAGE),
        );
        if (stop !== undefined) assert.equal(stop.kind, "end-of-wal");
        page += take;
      }
      assert.deepEqual(lsns, expected);
    }),
    propertySettings(50),
  );
});

test("a timeline switch inside the stream is read through; a timeline going back is a page problem", () => {
  for (const [first, second, expectProblem] of [
    [1, 2, false],
    [2, 1, true],
  ] as const) {
    const builder = new WalBuilder({ segmentSize: SEGMENT, timeline: first });
    for (let i = 0; i < 5; i++) builder.append(filler(20_000, i));
    builder.timeline = second;
    for (let i = 0; i < 5; i++) builder.append(filler(20_000, i + 5));
    const result = readAll(builder.finish(), builder.startLsn);
    if (expectProblem) {
      assert.equal(problemOf(result)?.kind, "page");
      assert.match(problemOf(result)!.message, /timeline 1 after timeline 2/);
    } else {
      assert.equal(problemOf(result), undefined);
      assert.deepEqual(
        result.lsns,
        builder.records.map((r) => r.lsn),
      );
    }
  }
});

test("COMMIT PREPARED and ABORT PREPARED name the prepared transaction, past every optional part", () => {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  const time = 849_000_000_000_000n;
  const counted = (items: number, size: number) => Buffer.concat([u32(items), Buffer.alloc(items * size, 7)]);
  // xinfo: DBINFO | SUBXACTS | RELFILENODES | INVALS | TWOPHASE | DROPPED_STATS (PostgreSQL 15 sizes).
  const commitMain = Buffer.concat([
    i64(time),
    u32(0x01 | 0x02 | 0x04 | 0x08 | 0x10 | 0x100),
    Buffer.alloc(8), // dbinfo
    counted(3, 4), // subtransactions
    counted(2, 12), // relation files
    counted(2, 12), // dropped statistics
    counted(4, 16), // invalidations
    u32(4242), // the prepared xid
  ]);
  const commit = builder.append({ rmid: 1, info: 0x30 | 0x80, xid: 0, body: mainDataBody(commitMain) });
  // An abort has no invalidations: the flag is ignored there.
  const abortMain = Buffer.concat([i64(time + 1n), u32(0x02 | 0x08 | 0x10), counted(1, 4), u32(4343)]);
  const abort = builder.append({ rmid: 1, info: 0x40 | 0x80, xid: 0, body: mainDataBody(abortMain) });
  // Parts that run past the main data leave the xid unknown (0), not misread.
  const brokenMain = Buffer.concat([i64(time + 2n), u32(0x02 | 0x10), u32(1000), u32(1)]);
  const broken = builder.append({ rmid: 1, info: 0x30 | 0x80, xid: 0, body: mainDataBody(brokenMain) });
  const result = readAll(builder.finish(), builder.startLsn);
  assert.deepEqual(result.events, [
    { kind: "commit-prepared", lsn: commit.lsn, xid: 4242, time },
    { kind: "abort-prepared", lsn: abort.lsn, xid: 4343, time: time + 1n },
    { kind: "commit-prepared", lsn: broken.lsn, xid: 0, time: time + 2n },
  ]);
});
