import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import * as zlibModule from "node:zlib";
import { gunzipSync, constants as zlibConstants } from "node:zlib";
import { StorageError } from "../../src/errors.js";
import { openDecompressed } from "../../src/wal/compression.js";
import { lz4DecompressFrames } from "../../src/wal/lz4-frame.js";
import { createWalStorage, type StorageOptions } from "../../src/wal/storage.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";
import {
  after,
  hasCommand,
  MIB,
  recordingFileSystem,
  unevenChunks,
  walLikeData,
  withTempDir,
} from "./helpers.js";

const NAME = "000000010000000000000003";
const SEGMENT = MIB;

const METHODS = [
  {
    method: "gzip" as const,
    suffix: ".gz",
    cli: "gzip",
    decode: (data: Buffer) => gunzipSync(data),
    decodePrefix: (data: Buffer) => gunzipSync(data, { finishFlush: zlibConstants.Z_SYNC_FLUSH }),
  },
  {
    method: "lz4" as const,
    suffix: ".lz4",
    cli: "lz4",
    decode: (data: Buffer) => lz4DecompressFrames(data),
    decodePrefix: (data: Buffer) => lz4DecompressFrames(data, { allowTruncated: true }),
  },
  // zstd is in node:zlib from Node.js 22.15; on older lines -Z zstd is refused (compression-spec tests).
  ...(zstdAvailable()
    ? [
        {
          method: "zstd" as const,
          suffix: ".zst",
          cli: "zstd",
          // The zstd tool refuses an unfinished frame ("premature end") and holds back its last
          // blocks; a .zst.partial is read by pgwal's own decoder (the sync test below).
          cliDecodesPartial: false,
          decode: (data: Buffer) => zstdDecodeSync(data, false),
          decodePrefix: (data: Buffer) => zstdDecodeSync(data, true),
        },
      ]
    : []),
];

/** Whole-buffer zstd decoding through the same decoder the archive tools use. */
function zstdDecodeSync(data: Buffer, allowTruncated: boolean): Buffer {
  const zlib = zlibModule as unknown as {
    zstdDecompressSync(data: Buffer, options?: { finishFlush?: number }): Buffer;
    constants: { ZSTD_e_continue: number };
  };
  return zlib.zstdDecompressSync(data, allowTruncated ? { finishFlush: zlib.constants.ZSTD_e_continue } : {});
}

async function readAll(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const pieces: Buffer[] = [];
  for await (const piece of stream) pieces.push(piece);
  return Buffer.concat(pieces);
}

for (const { method, suffix, cli, decode, decodePrefix, cliDecodesPartial = true } of METHODS) {
  const storageFor = (directory: string, extra: Partial<StorageOptions> = {}) =>
    createWalStorage({ directory, noSync: false, compression: { method }, ...extra });
  const partialName = `${NAME}${suffix}.partial`;
  const finalName = `${NAME}${suffix}`;

  test(`${method}: a complete segment decodes to exactly what was written`, async () => {
    await withTempDir(async (directory) => {
      const storage = storageFor(directory);
      const file = await storage.openSegment(NAME, SEGMENT);
      assert.equal((await stat(join(directory, partialName))).mode & 0o777, 0o600);
      const data = walLikeData(SEGMENT, 31);
      const chunks = unevenChunks(data);
      for (let i = 0; i < chunks.length; i += 3) {
        const group = chunks.slice(i, i + 3);
        await file.write(
          group,
          group.reduce((sum, chunk) => sum + chunk.byteLength, 0),
        );
      }
      assert.equal(file.offset, SEGMENT);
      await file.closeComplete();
      assert.deepEqual(await readdir(directory), [finalName]);
      const compressed = await readFile(join(directory, finalName));
      assert.ok(compressed.byteLength < SEGMENT, "it is compressed");
      assert.ok(decode(compressed).equals(data));
      assert.ok((await readAll(await openDecompressed(join(directory, finalName)))).equals(data));
      if (method === "gzip")
        assert.equal(compressed.readUInt32LE(compressed.byteLength - 4), SEGMENT, "ISIZE");
    });
  });

  test(`${method}: the ${cli} tool decodes complete${cliDecodesPartial ? " and synced-partial" : ""} files`, {
    skip: hasCommand(cli) ? false : `${cli} is not installed`,
  }, async () => {
    await withTempDir(async (directory) => {
      const storage = storageFor(directory);
      const data = walLikeData(SEGMENT, 32);
      const file = await storage.openSegment(NAME, SEGMENT);
      await file.write([data.subarray(0, 400_000)], 400_000);
      await file.sync();
      if (cliDecodesPartial) {
        const partial = spawnSync(cli, ["-d", "-c", join(directory, partialName)], {
          maxBuffer: 4 * SEGMENT,
        });
        assert.ok(partial.stdout.equals(data.subarray(0, 400_000)), "prefix decodes with the standard tool");
      }
      await file.write([data.subarray(400_000)], SEGMENT - 400_000);
      await file.closeComplete();
      const complete = spawnSync(cli, ["-d", "-c", join(directory, finalName)], { maxBuffer: 4 * SEGMENT });
      assert.equal(complete.status, 0, complete.stderr.toString());
      assert.ok(complete.stdout.equals(data));
    });
  });

  test(`${method}: sync makes a decodable prefix and fsyncs after the data is written`, async () => {
    await withTempDir(async (directory) => {
      const log: string[] = [];
      const storage = storageFor(directory, { fileSystem: recordingFileSystem(log) });
      const file = await storage.openSegment(NAME, SEGMENT);
      assert.deepEqual(log.slice(-2), [`fsynced ${partialName}`, "fsynced directory"]);
      const data = walLikeData(SEGMENT, 33);
      let written = 0;
      for (const end of [1, 5000, 123_457, 600_000]) {
        await file.write([data.subarray(written, end)], end - written);
        written = end;
        await file.sync();
        assert.equal(log.at(-1), `fdatasynced ${partialName}`);
        assert.equal(log.at(-2), `wrote ${partialName}`);
        const prefix = decodePrefix(await readFile(join(directory, partialName)));
        assert.ok(prefix.equals(data.subarray(0, end)), `decodable up to ${end}`);
        const streamed = await readAll(await openDecompressed(join(directory, partialName)));
        assert.ok(streamed.equals(data.subarray(0, end)), `openDecompressed up to ${end}`);
      }
      await file.abandon();
    });
  });

  test(`${method}: closeComplete finishes, fsyncs, closes, renames, fsyncs the directory`, async () => {
    await withTempDir(async (directory) => {
      const log: string[] = [];
      const storage = storageFor(directory, { fileSystem: recordingFileSystem(log) });
      const file = await storage.openSegment(NAME, SEGMENT);
      await file.write([walLikeData(SEGMENT, 34)], SEGMENT);
      await file.closeComplete();
      assert.deepEqual(after(log, `wrote ${partialName}`).slice(1), [
        `fsynced ${partialName}`,
        `closed ${partialName}`,
        `renamed ${partialName} -> ${finalName}`,
        "fsynced directory",
      ]);
    });
  });

  test(`${method}: closePartial leaves a complete stream under the .partial name`, async () => {
    await withTempDir(async (directory) => {
      const storage = storageFor(directory);
      const file = await storage.openSegment(NAME, SEGMENT);
      const data = walLikeData(250_000, 35);
      await file.write([data], data.byteLength);
      await assert.rejects(file.closeComplete(), /incomplete/);
      await file.closePartial();
      assert.deepEqual(await readdir(directory), [partialName]);
      assert.ok(decode(await readFile(join(directory, partialName))).equals(data));
    });
  });

  test(`${method}: restarting a segment never destroys WAL a .partial holds before the new stream is durable past it`, async () => {
    await withTempDir(async (directory) => {
      const data = walLikeData(SEGMENT, 40);
      const OLD_END = 300_000;
      // The previous run: WAL up to OLD_END synced (and so reported flushed), then stopped.
      const first = await storageFor(directory).openSegment(NAME, SEGMENT);
      await first.write([data.subarray(0, OLD_END)], OLD_END);
      await first.sync();
      await first.closePartial();
      /** WAL the archive holds for the segment, as a kill -9 at this moment would leave it. */
      const heldNow = async () => {
        let best: Buffer = Buffer.alloc(0);
        for (const name of await readdir(directory)) {
          if (name !== partialName && name !== finalName) continue;
          const held = decodePrefix(await readFile(join(directory, name)));
          if (held.byteLength > best.byteLength) best = held;
        }
        return best;
      };
      const assertHolds = async (end: number, moment: string) => {
        const held = await heldNow();
        assert.ok(
          held.byteLength >= end,
          `${moment}: the archive holds ${held.byteLength} bytes, ${end} were reported flushed`,
        );
        assert.ok(held.subarray(0, end).equals(data.subarray(0, end)), `${moment}: content`);
      };
      // The restart streams the segment again from its start.
      const log: string[] = [];
      const second = await storageFor(directory, { fileSystem: recordingFileSystem(log) }).openSegment(
        NAME,
        SEGMENT,
      );
      await assertHolds(OLD_END, "after the restart opened the segment");
      let written = 0;
      let reported = OLD_END;
      for (const end of [1000, 299_999, 300_000, 450_000]) {
        await second.write([data.subarray(written, end)], end - written);
        written = end;
        await assertHolds(reported, `after writing up to ${end}`);
        await second.sync();
        reported = Math.max(reported, end);
        await assertHolds(reported, `after sync at ${end}`);
      }
      // The old file was replaced only by a durable one, with a durable rename.
      const replaced = log.findIndex((entry) => entry.endsWith(`-> ${partialName}`));
      assert.ok(replaced > 0, log.join("\n"));
      assert.match(log[replaced - 1]!, /^(fdatasynced|fsynced) /);
      assert.equal(log[replaced + 1], "fsynced directory");
      await second.write([data.subarray(written)], SEGMENT - written);
      await second.closeComplete();
      assert.deepEqual(await readdir(directory), [finalName]);
      assert.ok(decode(await readFile(join(directory, finalName))).equals(data));
    });
  });

  test(`${method}: a restart that stops before passing the old .partial keeps the old one`, async () => {
    await withTempDir(async (directory) => {
      const data = walLikeData(400_000, 41);
      const first = await storageFor(directory).openSegment(NAME, SEGMENT);
      await first.write([data], data.byteLength);
      await first.closePartial();
      const second = await storageFor(directory).openSegment(NAME, SEGMENT);
      await second.write([data.subarray(0, 5000)], 5000);
      await second.sync();
      await second.closePartial();
      assert.deepEqual(await readdir(directory), [partialName]);
      assert.ok(decode(await readFile(join(directory, partialName))).equals(data));
    });
  });

  test(`${method}: a run killed while replacing leaves the old .partial; the next run replaces it`, async () => {
    await withTempDir(async (directory) => {
      const data = walLikeData(SEGMENT, 42);
      const first = await storageFor(directory).openSegment(NAME, SEGMENT);
      await first.write([data.subarray(0, 200_000)], 200_000);
      await first.closePartial();
      const killed = await storageFor(directory).openSegment(NAME, SEGMENT);
      await killed.write([data.subarray(0, 150_000)], 150_000);
      await killed.sync();
      await killed.abandon();
      assert.ok(decode(await readFile(join(directory, partialName))).equals(data.subarray(0, 200_000)));
      const next = await storageFor(directory).openSegment(NAME, SEGMENT);
      await next.write([data], SEGMENT);
      await next.closeComplete();
      assert.deepEqual(await readdir(directory), [finalName]);
      assert.ok(decode(await readFile(join(directory, finalName))).equals(data));
    });
  });

  test(`${method}: an existing .partial that holds no WAL is truncated and streamed again from the start`, async () => {
    await withTempDir(async (directory) => {
      await writeFile(join(directory, partialName), Buffer.alloc(300_000, 0x5a));
      const storage = storageFor(directory);
      const file = await storage.openSegment(NAME, SEGMENT);
      const data = walLikeData(1000, 36);
      await file.write([data], data.byteLength);
      await file.closePartial();
      assert.ok(decode(await readFile(join(directory, partialName))).equals(data));
    });
  });

  test(`${method}: writes past the end are refused; failures surface as StorageError`, async () => {
    await withTempDir(async (directory) => {
      const storage = storageFor(directory);
      const file = await storage.openSegment(NAME, SEGMENT);
      await file.write([Buffer.alloc(SEGMENT - 1)], SEGMENT - 1);
      await assert.rejects(file.write([Buffer.alloc(2)], 2), /would pass the segment end/);
      await file.write([Buffer.alloc(1)], 1);
      await file.closeComplete();
      assert.ok(decode(await readFile(join(directory, finalName))).equals(Buffer.alloc(SEGMENT)));

      const failing = storageFor(directory, {
        fileSystem: recordingFileSystem([], { failWritesWith: "ENOSPC" }),
      });
      const attempt = async () => {
        const broken = await failing.openSegment("000000010000000000000004", SEGMENT);
        try {
          await broken.write([walLikeData(100_000)], 100_000);
          await broken.sync();
        } finally {
          // As the receiver does on errors: Node 26 fails a run that leaves a FileHandle to the GC.
          await broken.abandon();
        }
      };
      await assert.rejects(
        attempt(),
        (error: unknown) => error instanceof StorageError && error.errno === "ENOSPC",
      );
    });
  });

  test(`${method}: noSync: sync hands everything written to the OS (no fsync), so a reported flush survives kill -9`, async () => {
    await withTempDir(async (directory) => {
      const log: string[] = [];
      const storage = storageFor(directory, { noSync: true, fileSystem: recordingFileSystem(log) });
      const file = await storage.openSegment(NAME, SEGMENT);
      const data = walLikeData(SEGMENT, 38);
      let written = 0;
      for (const end of [100, 70_000, 300_001]) {
        await file.write([data.subarray(written, end)], end - written);
        written = end;
        await file.sync();
        // What a kill -9 leaves: the file as the OS has it, nothing from the process's memory.
        const prefix = decodePrefix(await readFile(join(directory, partialName)));
        assert.equal(prefix.byteLength, end, `decodable bytes after sync at ${end}`);
        assert.ok(prefix.equals(data.subarray(0, end)));
      }
      await file.abandon();
      assert.ok(!log.some((entry) => entry.includes("synced")), log.join("\n"));
    });
  });

  test(`${method}: noSync never fsyncs`, async () => {
    await withTempDir(async (directory) => {
      const log: string[] = [];
      const storage = storageFor(directory, { noSync: true, fileSystem: recordingFileSystem(log) });
      const file = await storage.openSegment(NAME, SEGMENT);
      await file.write([walLikeData(SEGMENT, 37)], SEGMENT);
      await file.sync();
      await file.closeComplete();
      assert.ok(!log.some((entry) => entry.includes("synced")), log.join("\n"));
      assert.deepEqual(await readdir(directory), [finalName]);
    });
  });
}

test("gzip: the level is honoured", async () => {
  await withTempDir(async (directory) => {
    const data = walLikeData(SEGMENT, 38);
    const sizes: number[] = [];
    for (const level of [1, 9]) {
      const storage = createWalStorage({ directory, noSync: true, compression: { method: "gzip", level } });
      const file = await storage.openSegment(NAME, SEGMENT);
      await file.write([data], SEGMENT);
      await file.closeComplete();
      sizes.push((await stat(join(directory, `${NAME}.gz`))).size);
    }
    assert.ok(sizes[1]! < sizes[0]!, `level 9 (${sizes[1]}) smaller than level 1 (${sizes[0]})`);
  });
});
