import assert from "node:assert/strict";
import { test } from "node:test";
import {
  compareLsn,
  formatLsn,
  INVALID_LSN,
  isValidSegmentSize,
  maxLsn,
  minLsn,
  parseLsn,
  segmentNumberOf,
  segmentOffsetOf,
  segmentStartLsn,
  segmentStartOf,
  tryParseLsn,
} from "../../src/lsn.js";

const MAX = 0xffff_ffff_ffff_ffffn;
const MB = 1024 * 1024;
/** Every segment size PostgreSQL allows: 1 MB, 2 MB, … 1 GB. */
const SEGMENT_SIZES = Array.from({ length: 11 }, (_, i) => MB << i);

test("parse: high/low 32-bit halves in hex, either case", () => {
  assert.equal(parseLsn("16/B374D848"), 0x16_b374_d848n);
  assert.equal(parseLsn("16/b374d848"), 0x16_b374_d848n);
  assert.equal(parseLsn("0/0"), INVALID_LSN);
  assert.equal(parseLsn("0/1"), 1n);
  assert.equal(parseLsn("1/0"), 0x1_0000_0000n);
  assert.equal(parseLsn("FFFFFFFF/FFFFFFFF"), MAX);
  assert.equal(parseLsn("00000000/00000010"), 16n, "zero padding is accepted");
});

test("parse: invalid strings are rejected (undefined from tryParseLsn, RangeError from parseLsn)", () => {
  const invalid = [
    "",
    "/",
    "0/",
    "/0",
    "0",
    "123456789/0",
    "0/123456789",
    "0x1/0",
    "1/2/3",
    "g/0",
    "-1/0",
    "1 /0",
    "1/ 0",
    "1.5/0",
    "16-B374D848",
  ];
  for (const text of invalid) {
    assert.equal(tryParseLsn(text), undefined, JSON.stringify(text));
    assert.throws(() => parseLsn(text), RangeError, JSON.stringify(text));
  }
});

test("parse: surrounding whitespace is tolerated (lines of command output)", () => {
  assert.equal(tryParseLsn(" 0/16B3748\n"), 0x16b_3748n);
});

test("format: upper-case hex without padding, as PostgreSQL prints it", () => {
  assert.equal(formatLsn(0n), "0/0");
  assert.equal(formatLsn(0x16b_3748n), "0/16B3748");
  assert.equal(formatLsn(0x16_b374_d848n), "16/B374D848");
  assert.equal(formatLsn(0x1_0000_0000n), "1/0");
  assert.equal(formatLsn(MAX), "FFFFFFFF/FFFFFFFF");
  assert.throws(() => formatLsn(-1n), RangeError);
  assert.throws(() => formatLsn(MAX + 1n), RangeError);
});

test("format and parse are inverse across the range", () => {
  const samples = [0n, 1n, 0xffff_ffffn, 0x1_0000_0000n, 0x1234_5678_9abc_def0n, MAX - 1n, MAX];
  for (let bit = 0n; bit < 64n; bit++) samples.push(1n << bit, (1n << bit) - 1n);
  for (const lsn of samples) assert.equal(parseLsn(formatLsn(lsn)), lsn, formatLsn(lsn));
});

test("compare, max and min", () => {
  assert.equal(compareLsn(1n, 2n), -1);
  assert.equal(compareLsn(2n, 1n), 1);
  assert.equal(compareLsn(MAX, MAX), 0);
  // Values beyond 2^53 must compare exactly.
  assert.equal(compareLsn(2n ** 60n, 2n ** 60n + 1n), -1);
  assert.equal(maxLsn(3n, MAX), MAX);
  assert.equal(minLsn(3n, MAX), 3n);
  const sorted = [MAX, 0n, 2n ** 53n + 1n, 2n ** 53n].sort(compareLsn);
  assert.deepEqual(sorted, [0n, 2n ** 53n, 2n ** 53n + 1n, MAX]);
});

test("segment sizes: powers of two from 1 MB to 1 GB only", () => {
  for (const size of SEGMENT_SIZES) assert.ok(isValidSegmentSize(size), String(size));
  for (const size of [
    0,
    -MB,
    MB / 2,
    2 * 1024 * MB,
    3 * MB,
    16 * MB + 1,
    16 * MB - 1,
    1.5 * MB,
    Number.NaN,
    Number.POSITIVE_INFINITY,
  ]) {
    assert.equal(isValidSegmentSize(size), false, String(size));
  }
});

test("segment arithmetic for every segment size agrees with bit shifts", () => {
  const lsns = [0n, 1n, 0x16_b374_d848n, 0xffff_ffffn, 0x1_0000_0000n, MAX];
  for (const size of SEGMENT_SIZES) {
    const shift = BigInt(Math.log2(size));
    const mask = BigInt(size) - 1n;
    for (const lsn of lsns) {
      const where = `${formatLsn(lsn)} with ${size / MB} MB segments`;
      assert.equal(segmentNumberOf(lsn, size), lsn >> shift, where);
      assert.equal(segmentOffsetOf(lsn, size), Number(lsn & mask), where);
      assert.equal(segmentStartOf(lsn, size), lsn & ~mask, where);
      assert.equal(segmentStartLsn(segmentNumberOf(lsn, size), size), segmentStartOf(lsn, size), where);
      assert.equal(segmentStartOf(lsn, size) + BigInt(segmentOffsetOf(lsn, size)), lsn, where);
    }
    // The first and last byte of a segment belong to it; the next byte starts the next one.
    const segNo = 0x1234n;
    const start = segmentStartLsn(segNo, size);
    assert.equal(segmentNumberOf(start, size), segNo);
    assert.equal(segmentNumberOf(start + BigInt(size) - 1n, size), segNo);
    assert.equal(segmentOffsetOf(start + BigInt(size) - 1n, size), size - 1);
    assert.equal(segmentNumberOf(start + BigInt(size), size), segNo + 1n);
    assert.equal(segmentOffsetOf(start + BigInt(size), size), 0);
  }
});

test("segment arithmetic: known values for 16 MB and 1 GB", () => {
  const lsn = parseLsn("16/B374D848");
  assert.equal(segmentNumberOf(lsn, 16 * MB), 0x16b3n);
  assert.equal(segmentOffsetOf(lsn, 16 * MB), 0x74_d848);
  assert.equal(formatLsn(segmentStartOf(lsn, 16 * MB)), "16/B3000000");
  assert.equal(segmentNumberOf(lsn, 1024 * MB), 0x5an);
  assert.equal(segmentOffsetOf(lsn, 1024 * MB), 0x3374_d848);
  assert.equal(formatLsn(segmentStartOf(lsn, 1024 * MB)), "16/80000000");
  assert.equal(segmentNumberOf(MAX, MB), (1n << 44n) - 1n);
});
