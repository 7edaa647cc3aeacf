import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ArchiveError } from "../../src/errors.js";
import { Lz4BlockCompressor, lz4CompressBound, lz4DecompressBlock } from "../../src/wal/lz4-block.js";
import {
  Lz4FrameDecoder,
  Lz4FrameEncoder,
  lz4CompressFrame,
  lz4DecompressFrames,
} from "../../src/wal/lz4-frame.js";
import { XxHash32, xxhash32 } from "../../src/wal/xxhash32.js";
import { hasCommand, MIB, unevenChunks, walLikeData, withTempDir } from "./helpers.js";

const lz4Cli = hasCommand("lz4");
const skipWithoutCli = lz4Cli ? false : "the lz4 command is not installed (apt-get install lz4)";

test("xxh32 known values", () => {
  assert.equal(xxhash32(Buffer.alloc(0)), 0x02cc5d05);
  assert.equal(xxhash32(Buffer.from("a")), 0x550d7456);
  assert.equal(xxhash32(Buffer.from("abc")), 0x32d153ff);
  assert.equal(xxhash32(Buffer.from("Nobody inspects the spammish repetition")), 0xe2293b2f);
});

test("xxh32 streaming equals one-shot whatever the split", () => {
  const data = walLikeData(1000, 7);
  const whole = xxhash32(data);
  for (const sizes of [[1], [3, 5], [15, 16, 17], [64], [999]]) {
    const hash = new XxHash32();
    for (const chunk of unevenChunks(data, sizes)) hash.update(chunk);
    assert.equal(hash.digest(), whole, `split ${sizes.join(",")}`);
  }
  for (const length of [0, 1, 4, 15, 16, 17, 31, 32, 33]) {
    const part = data.subarray(0, length);
    const hash = new XxHash32();
    for (const chunk of unevenChunks(part, [2])) hash.update(chunk);
    assert.equal(hash.digest(), xxhash32(part), `length ${length}`);
  }
});

test("block round trip for edge sizes and patterns", () => {
  const compressor = new Lz4BlockCompressor();
  const inputs = [
    Buffer.alloc(0),
    Buffer.from("a"),
    Buffer.alloc(12, 1),
    Buffer.alloc(13, 1),
    Buffer.alloc(100_000),
    Buffer.from("abcabcabcabcabcabcabcabcabcabcabcabcabcabcabc"),
    walLikeData(70_000, 3),
    walLikeData(300_000, 4),
  ];
  for (const input of inputs) {
    const compressed = Buffer.alloc(lz4CompressBound(input.byteLength));
    const length = compressor.compress(input, compressed);
    assert.ok(length <= lz4CompressBound(input.byteLength));
    const output = Buffer.alloc(input.byteLength + 10);
    const end = lz4DecompressBlock(compressed, 0, length, output, 0, output.byteLength);
    assert.equal(end, input.byteLength);
    assert.ok(output.subarray(0, end).equals(input));
  }
  // Repetitive data really compresses.
  const zeros = Buffer.alloc(100_000);
  const out = Buffer.alloc(lz4CompressBound(zeros.byteLength));
  assert.ok(compressor.compress(zeros, out) < 1000);
});

test("block decoder rejects corrupt input instead of reading or writing out of bounds", () => {
  const input = walLikeData(10_000, 5);
  const compressed = Buffer.alloc(lz4CompressBound(input.byteLength));
  const length = new Lz4BlockCompressor().compress(input, compressed);
  const small = Buffer.alloc(100);
  assert.throws(() => lz4DecompressBlock(compressed, 0, length, small, 0, small.byteLength), ArchiveError);
  const badOffset = Buffer.from([0x14, 0x61, 0xff, 0x00]); // 1 literal, then a match 255 back
  assert.throws(
    () => lz4DecompressBlock(badOffset, 0, badOffset.byteLength, Buffer.alloc(100), 0, 100),
    ArchiveError,
  );
  const truncated = compressed.subarray(0, length - 3);
  assert.throws(() =>
    lz4DecompressBlock(truncated, 0, truncated.byteLength, Buffer.alloc(20_000), 0, 20_000),
  );
});

test("frame round trip across block boundaries, with and without checksums", () => {
  const data = walLikeData(3 * 64 * 1024 + 123, 9);
  for (const options of [
    { blockSizeId: 4 as const },
    { blockSizeId: 4 as const, blockChecksum: true, contentChecksum: false },
    { blockSizeId: 7 as const },
  ]) {
    const encoder = new Lz4FrameEncoder(options);
    const pieces = [encoder.header()];
    for (const chunk of unevenChunks(data)) pieces.push(...encoder.update(chunk));
    pieces.push(...encoder.end());
    const frame = Buffer.concat(pieces);
    assert.equal(frame.readUInt32LE(0), 0x184d2204);
    assert.ok(lz4DecompressFrames(frame).equals(data), JSON.stringify(options));
  }
  assert.equal(lz4DecompressFrames(lz4CompressFrame(Buffer.alloc(0))).byteLength, 0);
});

test("incompressible input is stored raw and still decodes", () => {
  const random = Buffer.alloc(200_000);
  let state = 99;
  for (let i = 0; i < random.byteLength; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) | 0;
    random[i] = state >>> 24;
  }
  const frame = lz4CompressFrame(random, { blockSizeId: 4 });
  assert.ok(frame.byteLength < random.byteLength + 100);
  assert.ok(lz4DecompressFrames(frame).equals(random));
});

test("flush ends a block: the output so far decodes (truncated) to all input so far", () => {
  const data = walLikeData(300_000, 11);
  const encoder = new Lz4FrameEncoder();
  const pieces = [encoder.header(), ...encoder.update(data.subarray(0, 123_457)), ...encoder.flush()];
  const prefix = Buffer.concat(pieces);
  assert.ok(lz4DecompressFrames(prefix, { allowTruncated: true }).equals(data.subarray(0, 123_457)));
  assert.throws(() => lz4DecompressFrames(prefix), /input ends inside a frame/);
  pieces.push(...encoder.update(data.subarray(123_457)), ...encoder.end());
  assert.ok(lz4DecompressFrames(Buffer.concat(pieces)).equals(data));
});

test("decoder detects corruption through the checksums and bad headers", () => {
  const data = walLikeData(50_000, 12);
  const frame = lz4CompressFrame(data);
  const badContent = Buffer.from(frame);
  badContent[badContent.byteLength - 1]! ^= 0xff;
  assert.throws(() => lz4DecompressFrames(badContent), /content checksum mismatch/);
  const badHeader = Buffer.from(frame);
  badHeader[6]! ^= 0xff;
  assert.throws(() => lz4DecompressFrames(badHeader), /header checksum mismatch/);
  const badMagic = Buffer.from(frame);
  badMagic[0] = 0;
  assert.throws(() => lz4DecompressFrames(badMagic), /unknown frame magic/);
  const withBlockChecksum = lz4CompressFrame(data, { blockChecksum: true });
  const badBlock = Buffer.from(withBlockChecksum);
  badBlock[20]! ^= 0x01;
  assert.throws(() => lz4DecompressFrames(badBlock), /block checksum mismatch|corrupt LZ4/);
});

test("decoder handles concatenated and skippable frames fed one byte at a time", () => {
  const a = walLikeData(1000, 1);
  const b = walLikeData(2000, 2);
  const skippable = Buffer.from([0x5a, 0x2a, 0x4d, 0x18, 3, 0, 0, 0, 9, 9, 9]);
  const stream = Buffer.concat([lz4CompressFrame(a), skippable, lz4CompressFrame(b)]);
  const decoder = new Lz4FrameDecoder();
  const output: Buffer[] = [];
  for (let i = 0; i < stream.byteLength; i++) output.push(...decoder.push(stream.subarray(i, i + 1)));
  decoder.finish();
  assert.ok(Buffer.concat(output).equals(Buffer.concat([a, b])));
});

test("the lz4 tool decodes our frames, also prefixes ended by flush", { skip: skipWithoutCli }, async () => {
  await withTempDir(async (directory) => {
    const data = walLikeData(5 * MIB, 21);
    const path = join(directory, "ours.lz4");
    await writeFile(path, lz4CompressFrame(data));
    const decoded = spawnSync("lz4", ["-d", "-c", path], { maxBuffer: 64 * MIB });
    assert.equal(decoded.status, 0, decoded.stderr.toString());
    assert.ok(decoded.stdout.equals(data));

    const encoder = new Lz4FrameEncoder();
    const prefix = Buffer.concat([
      encoder.header(),
      ...encoder.update(data.subarray(0, 777_777)),
      ...encoder.flush(),
    ]);
    await writeFile(path, prefix);
    const partial = spawnSync("lz4", ["-d", "-c", path], { maxBuffer: 64 * MIB });
    assert.ok(partial.stdout.equals(data.subarray(0, 777_777)), "flushed blocks are decodable");
  });
});

test("we decode the lz4 tool's frames, including linked blocks", { skip: skipWithoutCli }, async () => {
  await withTempDir(async (directory) => {
    const data = walLikeData(5 * MIB + 17, 22);
    const input = join(directory, "input");
    await writeFile(input, data);
    for (const flags of [[], ["-BD"], ["-B4", "-BD"], ["-B4", "-BX"], ["--content-size"], ["-9"]]) {
      const output = join(directory, "cli.lz4");
      const result = spawnSync("lz4", ["-q", "-f", ...flags, input, output]);
      assert.equal(result.status, 0, result.stderr.toString());
      assert.ok(lz4DecompressFrames(await readFile(output)).equals(data), flags.join(" "));
    }
  });
});
