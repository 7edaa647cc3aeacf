/**
 * The archive file reader: only regular files are opened, and decompression stops at what the
 * first page allows (its segment size + 1 byte, or the first page itself when it has no valid
 * long header), however much the compressed stream would produce.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { gzipSync } from "node:zlib";
import {
  NotRegularFileError,
  readSegmentFile,
  readSmallArchiveFile,
} from "../../src/archive/archive-file.js";
import { ArchiveError } from "../../src/errors.js";
import { lz4CompressFrame, lz4MaxBlockSize } from "../../src/wal/lz4-frame.js";
import {
  SYNTHETIC_PAGE,
  SYNTHETIC_SEGMENT_SIZE,
  syntheticName,
  syntheticSegment,
  writeBomb,
} from "./synthetic-wal.js";

let dir: string;

before(async () => {
  await mkdir("/tmp/h-archive", { recursive: true });
  dir = await mkdtemp("/tmp/h-archive/archive-file-");
});

after(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** The most one read can decode to past the limit: zlib's output chunks, or the LZ4 blocks one small read completes. */
const ONE_PIECE = { gzip: 64 * 1024, lz4: 2 * lz4MaxBlockSize(7) } as const;

for (const [method, suffix, compress] of [
  ["gzip", ".gz", (data: Buffer) => gzipSync(data, { level: 9 })],
  ["lz4", ".lz4", (data: Buffer) => lz4CompressFrame(data)],
] as const) {
  test(`${method}: a bomb after a valid segment is decoded up to segment size + 1 byte only`, {
    timeout: 120_000,
  }, async () => {
    const name = `${syntheticName(5n)}${suffix}`;
    await writeBomb(join(dir, name), compress, syntheticSegment(5n));
    const read = await readSegmentFile(dir, name, method, false);
    assert.ok(read !== undefined);
    assert.equal(read.content.length, SYNTHETIC_SEGMENT_SIZE + 1);
    assert.ok(
      read.decodedBytes <= SYNTHETIC_SEGMENT_SIZE + 1 + ONE_PIECE[method],
      `decoded ${read.decodedBytes} bytes of a 2 GiB stream`,
    );
  });

  test(`${method}: a bomb of zeros, or with a broken first page, stops after the first page`, {
    timeout: 120_000,
  }, async () => {
    const zeros = `${syntheticName(6n)}${suffix}.partial`;
    await writeBomb(join(dir, zeros), compress, Buffer.alloc(0));
    const zeroRead = await readSegmentFile(dir, zeros, method, true);
    assert.ok(zeroRead !== undefined);
    assert.equal(zeroRead.content.length, SYNTHETIC_PAGE);
    assert.ok(
      zeroRead.decodedBytes <= SYNTHETIC_PAGE + ONE_PIECE[method],
      `decoded ${zeroRead.decodedBytes}`,
    );

    const broken = syntheticSegment(7n);
    broken.writeUInt16LE(0xdead, 0);
    const garbage = `${syntheticName(7n)}${suffix}`;
    await writeBomb(join(dir, garbage), compress, broken, 256 * 1024 * 1024);
    const garbageRead = await readSegmentFile(dir, garbage, method, false);
    assert.ok(garbageRead !== undefined);
    assert.equal(garbageRead.content.length, SYNTHETIC_PAGE);
    assert.ok(
      garbageRead.decodedBytes <= SYNTHETIC_SEGMENT_SIZE + ONE_PIECE[method],
      `decoded ${garbageRead.decodedBytes}`,
    );
  });
}

test("a valid segment is read whole; a missing one is undefined; links are refused", async () => {
  const name = syntheticName(8n);
  await writeFile(join(dir, name), syntheticSegment(8n));
  const read = await readSegmentFile(dir, name, "none", false);
  assert.ok(read?.content.equals(syntheticSegment(8n)));
  assert.equal(await readSegmentFile(dir, syntheticName(9n), "none", false), undefined);
  await symlink(join(dir, name), join(dir, syntheticName(10n)));
  await assert.rejects(readSegmentFile(dir, syntheticName(10n), "none", false), NotRegularFileError);
});

test("a small file is read whole up to its cap, and refused past it", async () => {
  await writeFile(join(dir, "00000002.history"), "1\t0/3000000\tno recovery target specified\n");
  assert.equal(
    (await readSmallArchiveFile(dir, "00000002.history", 1024))?.toString(),
    "1\t0/3000000\tno recovery target specified\n",
  );
  await writeFile(join(dir, "00000003.history"), Buffer.alloc(300_000, "x"));
  await assert.rejects(readSmallArchiveFile(dir, "00000003.history", 200_000), ArchiveError);
  assert.equal(await readSmallArchiveFile(dir, "00000004.history", 1024), undefined);
});
