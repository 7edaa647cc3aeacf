/**
 * A failed fsync is never something to retry (PostgreSQL's fsync lesson): every storage reports
 * it as a StorageError the receiver does not retry, for files and directories alike.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { StorageError } from "../../src/errors.js";
import type { CompressionSpec } from "../../src/wal/compression.js";
import { createWalStorage } from "../../src/wal/storage.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";
import { MIB, recordingFileSystem, walLikeData, withTempDir } from "./helpers.js";

const NAME = "000000010000000000000003";
const SEGMENT = MIB;

function isUnretryableFsyncError(error: unknown): boolean {
  return error instanceof StorageError && error.retryable === false && /fsync/.test(error.message);
}

for (const compression of [
  { method: "none" },
  { method: "gzip" },
  { method: "lz4" },
  ...(zstdAvailable() ? [{ method: "zstd" }] : []),
] as CompressionSpec[]) {
  test(`${compression.method}: a failed file fsync is a StorageError that is not retried`, async () => {
    await withTempDir(async (directory) => {
      const healthy = createWalStorage({ directory, noSync: false, compression });
      const file = await healthy.openSegment(NAME, SEGMENT);
      await file.abandon();
      const failing = createWalStorage({
        directory,
        noSync: false,
        compression,
        fileSystem: recordingFileSystem([], { failFileSyncsWith: "EIO" }),
      });
      await assert.rejects(failing.openSegment("000000010000000000000004", SEGMENT), isUnretryableFsyncError);
    });
  });

  test(`${compression.method}: a failed directory fsync after the rename is not retried either`, async () => {
    await withTempDir(async (directory) => {
      const log: string[] = [];
      let failDirectory = false;
      const recording = recordingFileSystem(log);
      const storage = createWalStorage({
        directory,
        noSync: false,
        compression,
        fileSystem: {
          ...recording,
          fsyncDirectory: (path) =>
            failDirectory
              ? Promise.reject(new Error("injected directory fsync failure"))
              : recording.fsyncDirectory(path),
        },
      });
      const file = await storage.openSegment(NAME, SEGMENT);
      await file.write([walLikeData(SEGMENT)], SEGMENT);
      await file.sync();
      failDirectory = true;
      await assert.rejects(file.closeComplete(), isUnretryableFsyncError);
      assert.ok(
        log.some((entry) => entry.startsWith("renamed")),
        log.join("\n"),
      );
    });
  });
}
