import assert from "node:assert/strict";
import { test } from "node:test";
import { parseLsn, segmentNumberOf } from "../../src/lsn.js";
import {
  historyFileName,
  parseArchiveFileName,
  parseHistoryFileName,
  parseWalFileName,
  walFileName,
} from "../../src/wal/names.js";
import { MIB } from "./helpers.js";

const SEGMENT_SIZES = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map((mib) => mib * MIB);

test("known names: 0/3000000 with 16 MB segments, 1/0 with 1 MB segments", () => {
  const segment16 = segmentNumberOf(parseLsn("0/3000000"), 16 * MIB);
  assert.equal(walFileName(1, segment16, 16 * MIB), "000000010000000000000003");
  const segment1 = segmentNumberOf(parseLsn("1/0"), MIB);
  assert.equal(segment1, 4096n);
  assert.equal(walFileName(1, segment1, MIB), "000000010000000100000000");
  assert.equal(walFileName(0x1a, 0x2ffn, 16 * MIB), "0000001A00000002000000FF");
});

test("walFileName and parseWalFileName round-trip for every segment size", () => {
  for (const size of SEGMENT_SIZES) {
    const perId = 0x1_0000_0000n / BigInt(size);
    for (const segNo of [0n, 1n, perId - 1n, perId, perId + 1n, 12345n * perId + 7n, 0xffff_ffffn * perId]) {
      for (const timeline of [1, 2, 0xffff_ffff]) {
        const name = walFileName(timeline, segNo, size);
        assert.match(name, /^[0-9A-F]{24}$/);
        assert.deepEqual(parseWalFileName(name, size), { timeline, segNo }, `${name} @ ${size}`);
      }
    }
  }
});

test("parseWalFileName rejects malformed names and low parts impossible for the segment size", () => {
  assert.equal(parseWalFileName("00000001000000000000000", MIB), undefined);
  assert.equal(parseWalFileName("0000000100000000000000003", MIB), undefined);
  assert.equal(parseWalFileName("00000001000000000000000a", MIB), undefined, "lower-case hex");
  assert.equal(parseWalFileName("000000000000000000000003", MIB), undefined, "timeline 0");
  // 16 MB segments: only 256 segments per xlog id, so a low part of 0x100 cannot exist.
  assert.equal(parseWalFileName("000000010000000000000100", 16 * MIB), undefined);
  assert.deepEqual(parseWalFileName("000000010000000000000100", MIB), { timeline: 1, segNo: 256n });
});

test("walFileName rejects out-of-range arguments", () => {
  assert.throws(() => walFileName(0, 1n, MIB), RangeError);
  assert.throws(() => walFileName(1, -1n, MIB), RangeError);
  assert.throws(() => walFileName(1, 0x1_0000_0000n * 256n, 16 * MIB), RangeError);
});

test("history file names", () => {
  assert.equal(historyFileName(1), "00000001.history");
  assert.equal(historyFileName(0xab), "000000AB.history");
  assert.equal(parseHistoryFileName("000000AB.history"), 0xab);
  assert.equal(parseHistoryFileName("000000ab.history"), undefined);
  assert.equal(parseHistoryFileName("00000000.history"), undefined);
  assert.equal(parseHistoryFileName("000000AB.history.tmp"), undefined);
});

test("parseArchiveFileName recognises exactly pg_receivewal's names, and pgwal's .zst", () => {
  const name = "000000010000000000000003";
  assert.deepEqual(parseArchiveFileName(name), { walFileName: name, compression: "none", partial: false });
  assert.deepEqual(parseArchiveFileName(`${name}.partial`), {
    walFileName: name,
    compression: "none",
    partial: true,
  });
  assert.deepEqual(parseArchiveFileName(`${name}.gz`), {
    walFileName: name,
    compression: "gzip",
    partial: false,
  });
  assert.deepEqual(parseArchiveFileName(`${name}.gz.partial`), {
    walFileName: name,
    compression: "gzip",
    partial: true,
  });
  assert.deepEqual(parseArchiveFileName(`${name}.lz4`), {
    walFileName: name,
    compression: "lz4",
    partial: false,
  });
  assert.deepEqual(parseArchiveFileName(`${name}.lz4.partial`), {
    walFileName: name,
    compression: "lz4",
    partial: true,
  });
  // pgwal's own zstd archives (pg_receivewal never writes them).
  assert.deepEqual(parseArchiveFileName(`${name}.zst`), {
    walFileName: name,
    compression: "zstd",
    partial: false,
  });
  assert.deepEqual(parseArchiveFileName(`${name}.zst.partial`), {
    walFileName: name,
    compression: "zstd",
    partial: true,
  });
  for (const other of [
    `${name}.partial.gz`,
    `${name}.partial.zst`,
    `${name}.zstd`,
    `${name}.gz.tmp`,
    `${name}.00000028.backup`,
    "00000001.history",
    "00000001000000000000000a",
    `x${name}`,
    `${name}.lz4.partial.tmp`,
  ]) {
    assert.equal(parseArchiveFileName(other), undefined, other);
  }
});
