/** Shared helpers for the WAL storage tests: temp directories, test data, a recording file system. */
import { spawnSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { errnoError, nodeFileSystem, type WalFileHandle, type WalFileSystem } from "../../src/wal/fsync.js";

export const MIB = 1024 * 1024;

export async function withTempDir<T>(run: (directory: string) => Promise<T>): Promise<T> {
  const directory = await mkdtemp(join(tmpdir(), "pgwal-wal-test-"));
  try {
    return await run(directory);
  } finally {
    await rm(directory, { recursive: true, force: true });
  }
}

/** Deterministic bytes that compress somewhat (like WAL: some structure, some noise). */
export function walLikeData(length: number, seed = 1): Buffer {
  const data = Buffer.alloc(length);
  let state = seed;
  for (let i = 0; i < length; i++) {
    state = (Math.imul(state, 1103515245) + 12345) | 0;
    data[i] = i % 512 < 160 ? state >>> 24 : (i >>> 3) & 0xff;
  }
  return data;
}

/** Splits `data` into chunks of varying sizes (as socket reads would arrive). */
export function unevenChunks(
  data: Uint8Array,
  sizes: readonly number[] = [1, 7, 4093, 65536, 100_003],
): Uint8Array[] {
  const chunks: Uint8Array[] = [];
  let at = 0;
  let index = 0;
  while (at < data.byteLength) {
    const size = Math.min(sizes[index++ % sizes.length]!, data.byteLength - at);
    chunks.push(data.subarray(at, at + size));
    at += size;
  }
  return chunks;
}

export function hasCommand(command: string): boolean {
  const result = spawnSync(command, ["--version"], { stdio: "ignore" });
  return result.error === undefined;
}

export interface RecordingOptions {
  /** Makes every writev fail with this errno code. */
  failWritesWith?: string;
  /** Caps how many bytes one writev writes (to exercise short-write loops). */
  maxBytesPerWrite?: number;
  /** Makes every file fsync/fdatasync fail with this errno code. */
  failFileSyncsWith?: string;
  /** Makes every directory fsync fail with this errno code. */
  failDirectorySyncsWith?: string;
}

/**
 * The real file system, logging each operation by file base name. fsync/close/rename are logged
 * when they complete, so "fsynced X" before "renamed X" proves the rename waited for the fsync.
 */
export function recordingFileSystem(log: string[], options: RecordingOptions = {}): WalFileSystem {
  const wrap = (handle: WalFileHandle, name: string): WalFileHandle => ({
    async writev(buffers, position) {
      if (options.failWritesWith) throw errnoError(options.failWritesWith, "injected failure");
      let limited = buffers;
      if (options.maxBytesPerWrite !== undefined) {
        const first = buffers[0]!;
        const length = Math.min(first.byteLength, options.maxBytesPerWrite);
        limited = [new Uint8Array(first.buffer, first.byteOffset, length)];
      }
      const result = await handle.writev(limited, position);
      log.push(`wrote ${name}`);
      return result;
    },
    stat: () => handle.stat(),
    truncate: (length) => handle.truncate(length),
    async sync() {
      if (options.failFileSyncsWith) throw errnoError(options.failFileSyncsWith, "injected fsync failure");
      await handle.sync();
      log.push(`fsynced ${name}`);
    },
    async datasync() {
      if (options.failFileSyncsWith) throw errnoError(options.failFileSyncsWith, "injected fsync failure");
      await handle.datasync();
      log.push(`fdatasynced ${name}`);
    },
    async close() {
      await handle.close();
      log.push(`closed ${name}`);
    },
  });
  return {
    async open(path, flags, mode) {
      const handle = await nodeFileSystem.open(path, flags, mode);
      log.push(`opened ${basename(path)}`);
      return wrap(handle, basename(path));
    },
    async rename(from, to) {
      await nodeFileSystem.rename(from, to);
      log.push(`renamed ${basename(from)} -> ${basename(to)}`);
    },
    async unlink(path) {
      await nodeFileSystem.unlink(path);
      log.push(`removed ${basename(path)}`);
    },
    async fsyncDirectory(path) {
      if (options.failDirectorySyncsWith)
        throw errnoError(options.failDirectorySyncsWith, "injected directory fsync failure");
      await nodeFileSystem.fsyncDirectory(path);
      log.push("fsynced directory");
    },
  };
}

/** The log entries from the last one matching `marker` (inclusive) on. */
export function after(log: readonly string[], marker: string): string[] {
  const index = log.lastIndexOf(marker);
  return index < 0 ? [] : log.slice(index);
}
