import assert from "node:assert/strict";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as zlibModule from "node:zlib";
import { gzipSync } from "node:zlib";
import { parseLsn, segmentStartLsn } from "../../src/lsn.js";
import { findStreamingStart } from "../../src/wal/archive-scan.js";
import { lz4CompressFrame } from "../../src/wal/lz4-frame.js";
import { walFileName } from "../../src/wal/names.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";
import { MIB, withTempDir } from "./helpers.js";

const SEGMENT = MIB;
const name = (timeline: number, segNo: bigint) => walFileName(timeline, segNo, SEGMENT);
const full = Buffer.alloc(SEGMENT, 1);

async function scan(directory: string) {
  const warnings: string[] = [];
  const position = await findStreamingStart(directory, SEGMENT, (msg) => warnings.push(msg));
  return { position, warnings };
}

test("an empty or unrelated directory gives no position", async () => {
  await withTempDir(async (directory) => {
    assert.equal((await scan(directory)).position, undefined);
    await writeFile(join(directory, "00000002.history"), "1\t0/3000000\tx\n");
    await writeFile(join(directory, `${name(1, 9n)}.00000028.backup`), "x");
    await writeFile(join(directory, name(1, 0xan).toLowerCase()), full);
    await writeFile(join(directory, `${name(1, 9n)}.zstd`), "x");
    await writeFile(join(directory, "notes.txt"), "x");
    await mkdir(join(directory, name(1, 20n)));
    const { position, warnings } = await scan(directory);
    assert.equal(position, undefined);
    assert.deepEqual(warnings, []);
  });
});

test("after a complete segment, streaming starts at the next one", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, name(1, 2n)), full);
    await writeFile(join(directory, name(1, 3n)), full);
    const { position } = await scan(directory);
    assert.deepEqual(position, {
      timeline: 1,
      segNo: 3n,
      startLsn: segmentStartLsn(4n, SEGMENT),
      fileName: name(1, 3n),
      partial: false,
      compression: "none",
    });
    assert.equal(position?.startLsn, parseLsn("0/400000"));
  });
});

test("a partial segment is streamed again from its start; complete beats partial of the same segment", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, name(1, 3n)), full);
    await writeFile(join(directory, `${name(1, 4n)}.partial`), full);
    let { position } = await scan(directory);
    assert.equal(position?.partial, true);
    assert.equal(position?.startLsn, segmentStartLsn(4n, SEGMENT));
    assert.equal(position?.fileName, `${name(1, 4n)}.partial`);

    await writeFile(join(directory, name(1, 4n)), full);
    ({ position } = await scan(directory));
    assert.equal(position?.partial, false);
    assert.equal(position?.startLsn, segmentStartLsn(5n, SEGMENT));
  });
});

test("the highest segment wins over a higher timeline; on the same segment the higher timeline wins", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, name(1, 7n)), full);
    await writeFile(join(directory, `${name(2, 6n)}.partial`), full);
    let { position } = await scan(directory);
    assert.equal(position?.timeline, 1);
    assert.equal(position?.startLsn, segmentStartLsn(8n, SEGMENT));

    await writeFile(join(directory, `${name(2, 7n)}.partial`), full);
    ({ position } = await scan(directory));
    assert.equal(position?.timeline, 2);
    assert.equal(position?.partial, true);
    assert.equal(position?.startLsn, segmentStartLsn(7n, SEGMENT));
  });
});

test("completed files of the wrong size are skipped with pg_receivewal's warnings", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, name(1, 3n)), full);
    await writeFile(join(directory, `${name(1, 4n)}.partial`), full);
    await writeFile(join(directory, name(1, 4n)), Buffer.alloc(1000));
    await writeFile(join(directory, `${name(1, 5n)}.gz`), gzipSync(Buffer.alloc(SEGMENT - 1)));
    await writeFile(join(directory, `${name(1, 6n)}.lz4`), lz4CompressFrame(Buffer.alloc(SEGMENT + 1)));
    await writeFile(join(directory, `${name(1, 7n)}.lz4`), Buffer.from("not lz4 at all"));
    await writeFile(join(directory, `${name(1, 8n)}.gz`), Buffer.from("x"));
    const { position, warnings } = await scan(directory);
    assert.equal(position?.fileName, `${name(1, 4n)}.partial`);
    assert.equal(position?.startLsn, segmentStartLsn(4n, SEGMENT));
    assert.deepEqual(warnings, [
      `compressed segment file "${name(1, 8n)}.gz" has incorrect uncompressed size 0, skipping`,
      `could not decompress file "${name(1, 7n)}.lz4": corrupt LZ4 data: unknown frame magic 0x20746f6e, skipping`,
      `compressed segment file "${name(1, 6n)}.lz4" has incorrect uncompressed size ${SEGMENT + 1}, skipping`,
      `compressed segment file "${name(1, 5n)}.gz" has incorrect uncompressed size ${SEGMENT - 1}, skipping`,
      `segment file "${name(1, 4n)}" has incorrect size 1000, skipping`,
    ]);
  });
});

test("compressed complete files of the right size count as complete", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, `${name(1, 3n)}.gz`), gzipSync(full));
    let { position } = await scan(directory);
    assert.equal(position?.compression, "gzip");
    assert.equal(position?.startLsn, segmentStartLsn(4n, SEGMENT));

    await writeFile(join(directory, `${name(1, 4n)}.lz4.partial`), Buffer.alloc(0));
    ({ position } = await scan(directory));
    assert.deepEqual([position?.compression, position?.partial], ["lz4", true]);

    await writeFile(join(directory, `${name(1, 4n)}.lz4`), lz4CompressFrame(full, { blockSizeId: 4 }));
    ({ position } = await scan(directory));
    assert.deepEqual([position?.compression, position?.partial], ["lz4", false]);
    assert.equal(position?.startLsn, segmentStartLsn(5n, SEGMENT));
  });
});

test("names are read with the archive's segment size (1 MB: 4096 segments per xlog id)", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, "000000010000000100000FFF"), full);
    const { position } = await scan(directory);
    assert.equal(position?.segNo, 0x1fffn);
    assert.equal(position?.startLsn, parseLsn("2/0"));
  });
});

test("a .zst segment counts when it decodes to a whole segment; a broken one is skipped with a warning", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, `${name(1, 4n)}.zst`), "not zstd");
    const broken = await scan(directory);
    assert.equal(broken.position, undefined);
    assert.equal(broken.warnings.length, 1);
    assert.match(
      broken.warnings[0]!,
      /^could not decompress file "000000010000000000000004\.zst": .*, skipping$/,
    );
    if (!zstdAvailable()) return;
    const zlib = zlibModule as unknown as { zstdCompressSync(data: Buffer): Buffer };
    await writeFile(join(directory, `${name(1, 5n)}.zst`), zlib.zstdCompressSync(full));
    await writeFile(join(directory, `${name(1, 6n)}.zst`), zlib.zstdCompressSync(full.subarray(1)));
    const { position, warnings } = await scan(directory);
    assert.equal(position?.fileName, `${name(1, 5n)}.zst`);
    assert.equal(position?.compression, "zstd");
    assert.equal(position?.startLsn, 6n * BigInt(SEGMENT));
    assert.ok(
      warnings.some((w) => w.includes(`"${name(1, 6n)}.zst" has incorrect uncompressed size ${SEGMENT - 1}`)),
      warnings.join("\n"),
    );
  });
});
