/**
 * Where the archive tools read an archive from: a local directory (the readers of archive-file.ts
 * and archive-listing.ts), or (src/store/bucket-source.ts) an S3 bucket written by
 * `pgwal receive --target`. Every read of restore, verify and status goes through here, so both
 * kinds get the same bounded decoding and the same answers: a missing file is `undefined`, never
 * an error, and an archive that cannot be read at all is an error, never "empty".
 */
import * as fsp from "node:fs/promises";
import { ArchiveError, StorageError } from "../errors.js";
import type { CompressionMethod } from "../wal/compression.js";
import { type DecodedSegment, readSegmentFile, readSmallArchiveFile } from "./archive-file.js";
import { type ArchiveListing, listArchiveDirectory } from "./archive-listing.js";

export interface ArchiveSource {
  /** Shown in messages: the directory, or s3://BUCKET/PREFIX. */
  readonly description: string;
  /** True for a local directory (the tools that only work on one check this). */
  readonly isDirectory: boolean;
  /**
   * Fails (ArchiveError, StorageError or the store's error) unless the archive itself can be read:
   * a mistyped directory or bucket must not look like an archive without the file.
   */
  checkUsable(): Promise<void>;
  /** What the archive holds, sorted by kind (see archive-listing.ts). */
  list(): Promise<ArchiveListing>;
  /** A segment file decoded as readSegmentFile decodes it (bounded by its first page), or undefined. */
  readSegment(
    fileName: string,
    compression: CompressionMethod,
    partial: boolean,
    stopAfter?: number,
  ): Promise<DecodedSegment | undefined>;
  /** The raw bytes of a small file (history, backup label), or undefined; an ArchiveError when larger than `maxBytes`. */
  readSmallFile(fileName: string, maxBytes: number): Promise<Buffer | undefined>;
}

/** A directory path as a source; other sources pass through. */
export function archiveSourceOf(archive: string | ArchiveSource): ArchiveSource {
  return typeof archive === "string" ? directorySource(archive) : archive;
}

/** errno values after which the same read may well succeed a moment later. */
export const TRANSIENT_ERRNOS = new Set([
  "EIO",
  "EAGAIN",
  "EWOULDBLOCK",
  "EINTR",
  "EBUSY",
  "ETIMEDOUT",
  "ESTALE",
  "EMFILE",
  "ENFILE",
]);

/**
 * Fails unless `directory` is a directory. Without this, a mistyped or unmounted archive would
 * answer "not in the archive" for every file, and a recovery would end early.
 */
async function checkArchiveDirectory(directory: string): Promise<void> {
  let stats: { isDirectory(): boolean };
  try {
    stats = await fsp.stat(directory);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined || TRANSIENT_ERRNOS.has(code)) throw new StorageError("stat", directory, error);
    throw new ArchiveError(`cannot use archive directory "${directory}": ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (!stats.isDirectory()) throw new ArchiveError(`archive directory "${directory}" is not a directory`);
}

export function directorySource(directory: string): ArchiveSource {
  return {
    description: directory,
    isDirectory: true,
    checkUsable: () => checkArchiveDirectory(directory),
    list: () => listArchiveDirectory(directory),
    readSegment: (fileName, compression, partial, stopAfter) =>
      readSegmentFile(directory, fileName, compression, partial, stopAfter),
    readSmallFile: (fileName, maxBytes) => readSmallArchiveFile(directory, fileName, maxBytes),
  };
}
