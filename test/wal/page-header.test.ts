import assert from "node:assert/strict";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { ArchiveError, StorageError } from "../../src/errors.js";
import {
  KNOWN_XLOG_PAGE_MAGIC,
  LONG_PAGE_HEADER_SIZE,
  parseWalPageHeader,
  readSystemIdentifier,
  WAL_BLOCK_SIZE,
  XLP_LONG_HEADER,
} from "../../src/wal/page-header.js";
import { createWalStorage } from "../../src/wal/storage.js";
import { MIB, withTempDir } from "./helpers.js";

const SYSTEM_ID = 7_301_234_567_890_123_456n;
const SEGMENT = MIB;

function firstPage(options: { long?: boolean; systemIdentifier?: bigint } = {}): Buffer {
  const page = Buffer.alloc(WAL_BLOCK_SIZE);
  page.writeUInt16LE(0xd116, 0);
  page.writeUInt16LE(options.long === false ? 0x0001 : XLP_LONG_HEADER, 2);
  page.writeUInt32LE(3, 4);
  page.writeBigUInt64LE(0x1_0300_0000n, 8);
  page.writeUInt32LE(42, 16);
  page.writeBigUInt64LE(options.systemIdentifier ?? SYSTEM_ID, 24);
  page.writeUInt32LE(SEGMENT, 32);
  page.writeUInt32LE(WAL_BLOCK_SIZE, 36);
  page.fill(0x77, LONG_PAGE_HEADER_SIZE, 200);
  return page;
}

test("parses short and long page headers", () => {
  assert.deepEqual(parseWalPageHeader(firstPage()), {
    magic: 0xd116,
    info: XLP_LONG_HEADER,
    timeline: 3,
    pageAddress: 0x1_0300_0000n,
    remLen: 42,
    long: { systemIdentifier: SYSTEM_ID, segmentSize: SEGMENT, blockSize: WAL_BLOCK_SIZE },
  });
  const short = parseWalPageHeader(firstPage({ long: false }));
  assert.equal(short.long, undefined);
  assert.equal(short.info, 1);
  assert.throws(() => parseWalPageHeader(Buffer.alloc(10)), ArchiveError);
  const truncatedLong = firstPage().subarray(0, 30);
  assert.throws(() => parseWalPageHeader(truncatedLong), ArchiveError);
});

test("known XLOG_PAGE_MAGIC values per major version", () => {
  assert.equal(KNOWN_XLOG_PAGE_MAGIC.get(0xd106), "13");
  assert.equal(KNOWN_XLOG_PAGE_MAGIC.get(0xd10d), "14");
  assert.equal(KNOWN_XLOG_PAGE_MAGIC.get(0xd110), "15");
  assert.equal(KNOWN_XLOG_PAGE_MAGIC.get(0xd113), "16");
  assert.equal(KNOWN_XLOG_PAGE_MAGIC.get(0xd116), "17");
  assert.equal(KNOWN_XLOG_PAGE_MAGIC.get(0xd118), "18");
  assert.equal(new Set(KNOWN_XLOG_PAGE_MAGIC.values()).size, KNOWN_XLOG_PAGE_MAGIC.size);
});

test("reads the system identifier from plain, gzip and lz4 files, partial or complete", async () => {
  await withTempDir(async (directory) => {
    for (const method of ["none", "gzip", "lz4"] as const) {
      const storage = createWalStorage({ directory, noSync: true, compression: { method } });
      const suffix = method === "gzip" ? ".gz" : method === "lz4" ? ".lz4" : "";
      const partial = await storage.openSegment("000000010000000000000005", SEGMENT);
      const partialPath = join(directory, `000000010000000000000005${suffix}.partial`);
      assert.equal(await readSystemIdentifier(partialPath), undefined, `${method}: fresh partial`);
      await partial.write([firstPage()], WAL_BLOCK_SIZE);
      if (method === "none")
        assert.equal(await readSystemIdentifier(partialPath), SYSTEM_ID, "plain partial");
      await partial.closePartial();
      assert.equal(await readSystemIdentifier(partialPath), SYSTEM_ID, `${method}: closed partial`);

      const complete = await storage.openSegment("000000010000000000000006", SEGMENT);
      const otherCluster = firstPage({ systemIdentifier: 99n });
      await complete.write([otherCluster, Buffer.alloc(SEGMENT - WAL_BLOCK_SIZE)], SEGMENT);
      await complete.closeComplete();
      assert.equal(
        await readSystemIdentifier(join(directory, `000000010000000000000006${suffix}`)),
        99n,
        method,
      );
    }
  });
});

test("a synced compressed partial already tells its system identifier", async () => {
  await withTempDir(async (directory) => {
    for (const method of ["gzip", "lz4"] as const) {
      const storage = createWalStorage({ directory, noSync: false, compression: { method } });
      const file = await storage.openSegment("000000010000000000000007", SEGMENT);
      await file.write([firstPage()], WAL_BLOCK_SIZE);
      await file.sync();
      const path = join(directory, `000000010000000000000007.${method === "gzip" ? "gz" : "lz4"}.partial`);
      assert.equal(await readSystemIdentifier(path), SYSTEM_ID, method);
      await file.abandon();
    }
  });
});

test("a file that does not start with a long header, or is missing, is an error", async () => {
  await withTempDir(async (directory) => {
    const path = join(directory, "000000010000000000000008");
    await writeFile(path, firstPage({ long: false }));
    await assert.rejects(readSystemIdentifier(path), ArchiveError);
    await assert.rejects(readSystemIdentifier(join(directory, "missing")), StorageError);
    const corrupt = join(directory, "000000010000000000000009.gz");
    await writeFile(corrupt, Buffer.from("definitely not gzip data, but long enough to matter"));
    await assert.rejects(readSystemIdentifier(corrupt), ArchiveError);
  });
});
