/**
 * Where the archive tools read an archive from: a local directory, or (src/store/bucket-source.ts)
 * an S3 bucket written by `pgwal receive --target`. The tools ask by file name; missing files are
 * `undefined`, not errors, so "not in the archive" reads the same from both.
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { ArchiveError } from "../errors.js";
import { storageCall } from "../wal/fsync.js";
import { type ArchiveListing, listArchiveDirectory } from "./archive-listing.js";
import { readArchiveContent, readArchivePrefix } from "./segment-content.js";

export interface ArchiveSource {
  /** Shown in messages: the directory, or s3://BUCKET/PREFIX. */
  readonly description: string;
  /**
   * The plain WAL bytes of an archive file (decompressed by its name's suffix; a ".partial" may stop
   * early), or undefined when there is no such file. Reads at most `limit` + 1 bytes of output.
   */
  readContent(name: string, limit?: number): Promise<Buffer | undefined>;
  /** The first `length` plain WAL bytes of an archive file (fewer when shorter), or undefined. */
  readPrefix(name: string, length: number): Promise<Buffer | undefined>;
  /** The raw bytes of a small file (history, backup label); an ArchiveError when larger than `maxBytes`. */
  readSmallFile(name: string, maxBytes: number): Promise<Buffer | undefined>;
  /** What the archive holds, sorted by kind (see archive-listing.ts). */
  list(): Promise<ArchiveListing>;
}

/** A directory path as a source; other sources pass through. */
export function archiveSourceOf(archive: string | ArchiveSource): ArchiveSource {
  return typeof archive === "string" ? directorySource(archive) : archive;
}

export function directorySource(directory: string): ArchiveSource {
  return {
    description: directory,
    readContent: (name, limit) => readArchiveContent(join(directory, name), limit),
    readPrefix: (name, length) => readArchivePrefix(join(directory, name), length),
    list: () => listArchiveDirectory(directory),
    async readSmallFile(name, maxBytes) {
      const path = join(directory, name);
      try {
        const stats = await fsp.stat(path);
        if (!stats.isFile()) return undefined;
        if (stats.size > maxBytes)
          throw new ArchiveError(`archived file "${name}" is too large (${stats.size} bytes)`);
        return await fsp.readFile(path);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        if (error instanceof ArchiveError) throw error;
        return storageCall("read", path, () => Promise.reject(error));
      }
    },
  };
}
