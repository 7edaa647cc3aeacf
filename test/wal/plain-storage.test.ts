import assert from "node:assert/strict";
import { readdir, readFile, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import { StorageError } from "../../src/errors.js";
import { nodeFileSystem, type WalFileSystem } from "../../src/wal/fsync.js";
import { createWalStorage, type StorageOptions } from "../../src/wal/storage.js";
import { after, MIB, recordingFileSystem, walLikeData, withTempDir } from "./helpers.js";

const NAME = "000000010000000000000003";
const SEGMENT = MIB;

function plainStorage(directory: string, extra: Partial<StorageOptions> = {}) {
  return createWalStorage({ directory, noSync: false, compression: { method: "none" }, ...extra });
}

test("a new segment is a .partial of full size, all zeros, mode 0600, offset 0, fsynced with its directory", async () => {
  await withTempDir(async (directory) => {
    const log: string[] = [];
    const storage = plainStorage(directory, { fileSystem: recordingFileSystem(log) });
    const file = await storage.openSegment(NAME, SEGMENT);
    assert.equal(file.offset, 0);
    assert.equal(file.walFileName, NAME);
    const path = join(directory, `${NAME}.partial`);
    const info = await stat(path);
    assert.equal(info.size, SEGMENT);
    assert.equal(info.mode & 0o777, 0o600);
    assert.ok((await readFile(path)).every((byte) => byte === 0));
    assert.deepEqual(log.slice(-2), [`fsynced ${NAME}.partial`, "fsynced directory"]);
    await file.abandon();
  });
});

test("writes land at exact offsets, split or not; the rest stays zero", async () => {
  await withTempDir(async (directory) => {
    const storage = plainStorage(directory);
    const file = await storage.openSegment(NAME, SEGMENT);
    const data = walLikeData(300_000);
    await file.write([data.subarray(0, 10)], 10);
    assert.equal(file.offset, 10);
    await file.write([data.subarray(10, 11), data.subarray(11, 5000), data.subarray(5000, 200_000)], 199_990);
    assert.equal(file.offset, 200_000);
    await file.write([data.subarray(200_000)], 100_000);
    await file.write([], 0);
    assert.equal(file.offset, 300_000);
    await file.sync();
    const content = await readFile(join(directory, `${NAME}.partial`));
    assert.ok(content.subarray(0, 300_000).equals(data));
    assert.ok(content.subarray(300_000).every((byte) => byte === 0));
    await file.closePartial();
    assert.deepEqual(await readdir(directory), [`${NAME}.partial`]);
  });
});

test("short writes are continued until every byte is written", async () => {
  await withTempDir(async (directory) => {
    const log: string[] = [];
    const storage = plainStorage(directory, {
      fileSystem: recordingFileSystem(log, { maxBytesPerWrite: 1000 }),
    });
    const file = await storage.openSegment(NAME, SEGMENT);
    const data = walLikeData(12_345);
    await file.write([data.subarray(0, 2500), data.subarray(2500)], data.byteLength);
    const content = await readFile(join(directory, `${NAME}.partial`));
    assert.ok(content.subarray(0, data.byteLength).equals(data));
    await file.abandon();
  });
});

test("closeComplete fsyncs, closes, renames, then fsyncs the directory, in that order", async () => {
  await withTempDir(async (directory) => {
    const log: string[] = [];
    const storage = plainStorage(directory, { fileSystem: recordingFileSystem(log) });
    const file = await storage.openSegment(NAME, SEGMENT);
    const data = walLikeData(SEGMENT);
    await file.write([data.subarray(0, 1000)], 1000);
    await file.write([data.subarray(1000)], SEGMENT - 1000);
    await file.closeComplete();
    assert.deepEqual(after(log, `wrote ${NAME}.partial`).slice(1), [
      `fsynced ${NAME}.partial`,
      `closed ${NAME}.partial`,
      `renamed ${NAME}.partial -> ${NAME}`,
      "fsynced directory",
    ]);
    assert.deepEqual(await readdir(directory), [NAME]);
    assert.ok((await readFile(join(directory, NAME))).equals(data));
    await assert.rejects(file.write([Buffer.from("x")], 1), StorageError);
  });
});

test("closeComplete of an incomplete segment is refused and leaves the file usable", async () => {
  await withTempDir(async (directory) => {
    const storage = plainStorage(directory);
    const file = await storage.openSegment(NAME, SEGMENT);
    await file.write([Buffer.from("abc")], 3);
    await assert.rejects(
      file.closeComplete(),
      (error: unknown) => error instanceof StorageError && /incomplete/.test(error.message),
    );
    await file.write([Buffer.from("def")], 3);
    assert.equal(file.offset, 6);
    await file.closePartial();
    const content = await readFile(join(directory, `${NAME}.partial`));
    assert.equal(content.subarray(0, 6).toString(), "abcdef");
  });
});

test("a write that would pass the segment end is refused, nothing is written", async () => {
  await withTempDir(async (directory) => {
    const storage = plainStorage(directory);
    const file = await storage.openSegment(NAME, SEGMENT);
    await file.write([Buffer.alloc(SEGMENT - 10, 1)], SEGMENT - 10);
    await assert.rejects(file.write([Buffer.alloc(11, 2)], 11), /would pass the segment end/);
    assert.equal(file.offset, SEGMENT - 10);
    await assert.rejects(file.write([Buffer.alloc(4)], 5), /totalLength/);
    await file.write([Buffer.alloc(10, 3)], 10);
    await file.closeComplete();
    const content = await readFile(join(directory, NAME));
    assert.equal(content.byteLength, SEGMENT);
    assert.equal(content[SEGMENT - 1], 3);
  });
});

test("a full-size .partial is reused as it is (and fsynced)", async () => {
  await withTempDir(async (directory) => {
    const path = join(directory, `${NAME}.partial`);
    await writeFile(path, Buffer.alloc(SEGMENT, 0xab));
    const warnings: string[] = [];
    const log: string[] = [];
    const storage = plainStorage(directory, {
      onWarning: (msg) => warnings.push(msg),
      fileSystem: recordingFileSystem(log),
    });
    const file = await storage.openSegment(NAME, SEGMENT);
    assert.deepEqual(warnings, []);
    assert.ok(!log.some((entry) => entry.startsWith("wrote")), "no re-padding");
    assert.ok(log.includes(`fsynced ${NAME}.partial`));
    assert.ok((await readFile(path)).every((byte) => byte === 0xab));
    await file.write([Buffer.from("new")], 3);
    await file.closePartial();
    const content = await readFile(path);
    assert.equal(content.subarray(0, 3).toString(), "new");
    assert.equal(content[3], 0xab);
  });
});

test("an empty .partial is padded silently; a short or oversized one is padded again with a warning", async () => {
  await withTempDir(async (directory) => {
    const path = join(directory, `${NAME}.partial`);
    for (const [size, warns] of [
      [0, false],
      [12_345, true],
      [SEGMENT + 100, true],
    ] as const) {
      await writeFile(path, Buffer.alloc(size, 0xcd));
      const warnings: { msg: string; fields?: Record<string, unknown> }[] = [];
      const storage = plainStorage(directory, { onWarning: (msg, fields) => warnings.push({ msg, fields }) });
      const file = await storage.openSegment(NAME, SEGMENT);
      const content = await readFile(path);
      assert.equal(content.byteLength, SEGMENT, `size after padding a ${size}-byte file`);
      assert.ok(
        content.every((byte) => byte === 0),
        `zeros after padding a ${size}-byte file`,
      );
      assert.equal(warnings.length, warns ? 1 : 0);
      if (warns) {
        assert.match(warnings[0]!.msg, new RegExp(`has ${size} bytes, should be 0 or ${SEGMENT}`));
        assert.deepEqual(warnings[0]!.fields, { file: `${NAME}.partial`, size, segmentSize: SEGMENT });
      }
      await file.abandon();
    }
  });
});

test("ENOSPC surfaces as a StorageError with errno ENOSPC, and the file refuses further use", async () => {
  await withTempDir(async (directory) => {
    await writeFile(join(directory, `${NAME}.partial`), Buffer.alloc(SEGMENT));
    const storage = plainStorage(directory, {
      fileSystem: recordingFileSystem([], { failWritesWith: "ENOSPC" }),
    });
    const file = await storage.openSegment(NAME, SEGMENT);
    await assert.rejects(
      file.write([Buffer.from("x")], 1),
      (error: unknown) => error instanceof StorageError && error.errno === "ENOSPC" && error.retryable,
    );
    await assert.rejects(file.sync(), /earlier operation failed/);
    await file.abandon();
    await assert.rejects(
      plainStorage(directory, {
        fileSystem: recordingFileSystem([], { failWritesWith: "ENOSPC" }),
      }).openSegment("000000010000000000000004", SEGMENT),
      (error: unknown) => error instanceof StorageError && error.errno === "ENOSPC",
    );
  });
});

test("noSync: no fsync at all, plain rename", async () => {
  await withTempDir(async (directory) => {
    const log: string[] = [];
    const storage = plainStorage(directory, { noSync: true, fileSystem: recordingFileSystem(log) });
    const file = await storage.openSegment(NAME, SEGMENT);
    await file.write([Buffer.alloc(SEGMENT, 7)], SEGMENT);
    await file.sync();
    await file.closeComplete();
    assert.ok(!log.some((entry) => entry.includes("synced")), log.join("\n"));
    assert.ok(log.includes(`renamed ${NAME}.partial -> ${NAME}`));
    await storage.writeHistoryFile(2, Buffer.from("1\t0/3000000\tno recovery target specified\n"));
    assert.ok(!log.some((entry) => entry.includes("synced")));
  });
});

test("fileMode is applied to created files", async () => {
  await withTempDir(async (directory) => {
    const storage = plainStorage(directory, { fileMode: 0o640 });
    const file = await storage.openSegment(NAME, SEGMENT);
    assert.equal((await stat(join(directory, `${NAME}.partial`))).mode & 0o777, 0o640);
    await file.abandon();
    await storage.writeHistoryFile(3, Buffer.from("x"));
    assert.equal((await stat(join(directory, "00000003.history"))).mode & 0o777, 0o640);
  });
});

test("history files: written via .tmp, fsynced before the rename, never compressed", async () => {
  for (const method of ["none", "gzip", "lz4"] as const) {
    await withTempDir(async (directory) => {
      const log: string[] = [];
      const storage = createWalStorage({
        directory,
        noSync: false,
        compression: { method },
        fileSystem: recordingFileSystem(log),
      });
      const content = Buffer.from("1\t0/3000000\tno recovery target specified\n");
      assert.equal(await storage.hasHistoryFile(2), false);
      await storage.writeHistoryFile(2, content);
      assert.equal(await storage.hasHistoryFile(2), true);
      assert.equal(await storage.hasHistoryFile(3), false);
      assert.deepEqual(await readdir(directory), ["00000002.history"]);
      assert.ok((await readFile(join(directory, "00000002.history"))).equals(content));
      assert.deepEqual(after(log, "opened 00000002.history.tmp").slice(0, 6), [
        "opened 00000002.history.tmp",
        "wrote 00000002.history.tmp",
        "fsynced 00000002.history.tmp",
        "closed 00000002.history.tmp",
        "renamed 00000002.history.tmp -> 00000002.history",
        "fsynced directory",
      ]);
    });
  }
});

test("operations run one at a time even when not awaited", async () => {
  await withTempDir(async (directory) => {
    const storage = plainStorage(directory);
    const file = await storage.openSegment(NAME, SEGMENT);
    const pieces = Array.from({ length: 50 }, (_, i) => Buffer.alloc(1000, i + 1));
    await Promise.all([...pieces.map((piece) => file.write([piece], piece.byteLength)), file.sync()]);
    assert.equal(file.offset, 50_000);
    const content = await readFile(join(directory, `${NAME}.partial`));
    for (let i = 0; i < 50; i++) assert.equal(content[i * 1000 + 999], i + 1);
    await file.closePartial();
  });
});

test("a write of more chunks than IOV_MAX still lands in order", async () => {
  await withTempDir(async (directory) => {
    const storage = plainStorage(directory);
    const file = await storage.openSegment(NAME, SEGMENT);
    const chunks = Array.from({ length: 3000 }, (_, i) => Buffer.from([i & 0xff, i >> 8]));
    await file.write(chunks, 6000);
    const content = await readFile(join(directory, `${NAME}.partial`));
    assert.ok(content.subarray(0, 6000).equals(Buffer.concat(chunks)));
    await file.abandon();
  });
});

test("blockingWrites (--synchronous): writes and fdatasyncs go through the blocking calls, short writes continued", async () => {
  await withTempDir(async (directory) => {
    const calls: string[] = [];
    const blockingFs: WalFileSystem = {
      ...nodeFileSystem,
      async open(path, flags, mode) {
        const handle = await nodeFileSystem.open(path, flags, mode);
        return {
          writev: (buffers, position) => handle.writev(buffers, position),
          stat: () => handle.stat(),
          truncate: (length) => handle.truncate(length),
          sync: () => handle.sync(),
          datasync: () => handle.datasync(),
          close: () => handle.close(),
          writevBlocking(buffers, position) {
            calls.push("writevBlocking");
            // At most 1000 bytes per call: the caller must continue short writes.
            const first = buffers[0]!;
            const limited = new Uint8Array(first.buffer, first.byteOffset, Math.min(first.byteLength, 1000));
            return handle.writevBlocking!([limited], position);
          },
          datasyncBlocking() {
            calls.push("datasyncBlocking");
            handle.datasyncBlocking!();
          },
        };
      },
    };
    const storage = plainStorage(directory, { fileSystem: blockingFs, blockingWrites: true });
    const file = await storage.openSegment(NAME, SEGMENT);
    assert.ok(calls.length > 0, "the pre-padding zeros went through the blocking writes too");
    calls.length = 0;
    const data = walLikeData(5000, 7);
    await file.write([data.subarray(0, 1500), data.subarray(1500)], data.length);
    await file.sync();
    // Each call writes at most 1000 bytes of its first buffer: 1000+500 of the first chunk, then 3×1000+500.
    assert.equal(calls.filter((c) => c === "writevBlocking").length, 6);
    assert.deepEqual(calls.slice(-1), ["datasyncBlocking"]);
    await file.closePartial();
    const content = await readFile(join(directory, `${NAME}.partial`));
    assert.deepEqual(content.subarray(0, data.length), data);
    assert.ok(content.subarray(data.length).every((byte) => byte === 0));
  });
});

test("blockingWrites falls back to the async calls when the file system has no blocking forms", async () => {
  await withTempDir(async (directory) => {
    const log: string[] = [];
    const storage = plainStorage(directory, { fileSystem: recordingFileSystem(log), blockingWrites: true });
    const file = await storage.openSegment(NAME, SEGMENT);
    await file.write([walLikeData(100, 1)], 100);
    await file.sync();
    assert.deepEqual(log.slice(-2), [`wrote ${NAME}.partial`, `fdatasynced ${NAME}.partial`]);
    await file.abandon();
  });
});
