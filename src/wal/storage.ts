/**
 * Where and how WAL is stored, behind one small interface (the role of walmethods.c in
 * PostgreSQL). The receiver loop only knows positions and these operations; plain files, gzip and
 * lz4 are implementations it never tells apart.
 *
 * Durability contract (the receiver builds its flush position on it):
 * - `write` hands bytes to the OS (or to the compressor) in order; it does NOT make them durable.
 * - `sync` makes everything written so far durable (compressors flush a decodable block first).
 *   Under `noSync` it skips the fsync but still hands everything written to the OS (out of the
 *   compressor): the receiver reports it as flushed, and it must survive a killed process.
 * - `closeComplete` makes the segment durable and then gives it its final name, and makes the
 *   rename durable (fsync file, rename, fsync directory), in that order.
 * - `closePartial` makes what was written durable and leaves the file under its `.partial` name.
 * - `abandon` closes without syncing or renaming (used on errors: the next run re-streams).
 */
import type { CompressionSpec } from "./compression.js";
import { DEFAULT_FILE_MODE, nodeFileSystem, type WalFileSystem } from "./fsync.js";
import { createGzipWalStorage } from "./gzip-storage.js";
import { createLz4WalStorage } from "./lz4-storage.js";
import { PlainWalStorage } from "./plain-storage.js";
import { createZstdWalStorage } from "./zstd-storage.js";

export interface SegmentFile {
  /** Segment file name without suffixes: TTTTTTTTXXXXXXXXYYYYYYYY. */
  readonly walFileName: string;
  /** Path the segment has once complete (with the compression suffix, without ".partial"). */
  readonly finalPath: string;
  /** Offset in the segment where the next write goes (bytes written so far). */
  readonly offset: number;
  /**
   * Writes `chunks` (in order, `totalLength` bytes) at `offset`. Must not cross the segment end.
   * The buffers may be views into socket reads; they are not retained after the promise settles.
   */
  write(chunks: readonly Uint8Array[], totalLength: number): Promise<void>;
  sync(): Promise<void>;
  closeComplete(): Promise<void>;
  closePartial(): Promise<void>;
  abandon(): Promise<void>;
}

export interface WalStorage {
  /** Directory the archive lives in. */
  readonly directory: string;
  /**
   * Opens the segment for writing from offset 0 under its partial name, creating or reusing the
   * file as pg_receivewal does (plain: pre-padded with zeros to `segmentSize` and fsynced with its
   * directory before this resolves; compressed: a fresh stream, which replaces an existing
   * `.partial` only once it holds as much WAL and is durable).
   */
  openSegment(walFileName: string, segmentSize: number): Promise<SegmentFile>;
  /**
   * Makes an archive file an earlier run left (and its name) durable, unless `noSync`: the
   * receiver resumes after it and reports it flushed at once.
   */
  makeDurable(fileName: string): Promise<void>;
  /** True when `TTTTTTTT.history` is already in the archive. */
  hasHistoryFile(timeline: number): Promise<boolean>;
  /** Writes `TTTTTTTT.history` durably via a temporary name and a rename. */
  writeHistoryFile(timeline: number, content: Buffer): Promise<void>;
}

export interface StorageOptions {
  /** The archive directory (must exist). */
  directory: string;
  /** --no-sync: never fsync; renames are plain renames. */
  noSync: boolean;
  /** Mode of created files: 0o600 by default, 0o640 when the server's data_directory_mode allows group access. */
  fileMode?: number;
  /** Called for conditions worth a log line that the writer recovered from (a short .partial re-padded). */
  onWarning?: (msg: string, fields?: Record<string, unknown>) => void;
  /** File-system operations; tests pass a recording or failing one. Default: node:fs/promises. */
  fileSystem?: WalFileSystem;
  /**
   * --synchronous: plain segments are written and fdatasynced in the calling thread, as
   * pg_receivewal does. A synchronous standby's every commit waits on this path, and a thread-pool
   * round trip per call (two per batch) costs more than the write itself; blocking the event loop
   * for one fdatasync is what the server waits for anyway.
   */
  blockingWrites?: boolean;
}

/** Options with every default filled in, as the implementations receive them. */
export interface ResolvedStorageOptions {
  directory: string;
  noSync: boolean;
  fileMode: number;
  onWarning: (msg: string, fields?: Record<string, unknown>) => void;
  fileSystem: WalFileSystem;
  blockingWrites: boolean;
}

export function resolveStorageOptions(options: StorageOptions): ResolvedStorageOptions {
  return {
    directory: options.directory,
    noSync: options.noSync,
    fileMode: options.fileMode ?? DEFAULT_FILE_MODE,
    onWarning: options.onWarning ?? (() => {}),
    fileSystem: options.fileSystem ?? nodeFileSystem,
    blockingWrites: options.blockingWrites === true,
  };
}

/** The storage for a -Z/--compress choice: plain pre-padded files, gzip, lz4 or zstd. */
export function createWalStorage(options: StorageOptions & { compression: CompressionSpec }): WalStorage {
  const resolved = resolveStorageOptions(options);
  switch (options.compression.method) {
    case "none":
      return new PlainWalStorage(resolved);
    case "gzip":
      return createGzipWalStorage(resolved, options.compression.level);
    case "lz4":
      return createLz4WalStorage(resolved, options.compression.level);
    case "zstd":
      return createZstdWalStorage(resolved, options.compression);
  }
}
