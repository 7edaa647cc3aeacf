/**
 * What an archive directory holds, sorted by kind: segments (plain, compressed, partial), timeline
 * history files, backup history files, entries named like WAL that are not regular files (links,
 * FIFOs, devices, directories: never read, always a problem), and everything else (stray files).
 */
import type { Dirent, Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import type { CompressionMethod } from "../wal/compression.js";
import { storageCall } from "../wal/fsync.js";
import { parseArchiveFileName, parseHistoryFileName } from "../wal/names.js";
import { entryKind } from "./archive-file.js";

export interface SegmentFileEntry {
  fileName: string;
  /** The 24-digit segment name without suffixes. */
  walFileName: string;
  timeline: number;
  compression: CompressionMethod;
  partial: boolean;
  /** Bytes on disk. */
  size: number;
  mtimeMs: number;
}

export interface HistoryFileEntry {
  fileName: string;
  timeline: number;
  size: number;
  mtimeMs: number;
}

export interface ArchiveListing {
  /** Sorted by name. */
  segments: SegmentFileEntry[];
  histories: HistoryFileEntry[];
  /** "…NNNNNNNN.backup" files an archive_command may have stored: not WAL, but not stray either. */
  backupHistories: string[];
  /** Entries named like WAL, history or backup files that are not regular files. */
  irregular: { fileName: string; kind: string }[];
  /** Anything else (a directory name ends in "/"). */
  stray: string[];
}

const BACKUP_HISTORY_NAME = /^[0-9A-F]{24}\.[0-9A-F]{8}\.backup$/;

function isWalLikeName(name: string): boolean {
  return (
    parseArchiveFileName(name) !== undefined ||
    parseHistoryFileName(name) !== undefined ||
    BACKUP_HISTORY_NAME.test(name)
  );
}

/** lstat: a name replaced by a link since the directory was read is not followed. */
async function statOrUndefined(path: string): Promise<Stats | undefined> {
  try {
    return await fsp.lstat(path);
  } catch (error) {
    // Removed while we looked (a cleanup job): simply not part of the listing.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    return storageCall("stat", path, () => Promise.reject(error));
  }
}

export async function listArchiveDirectory(directory: string): Promise<ArchiveListing> {
  const entries: Dirent[] = await storageCall("read directory", directory, () =>
    fsp.readdir(directory, { withFileTypes: true }),
  );
  const listing = emptyListing();
  for (const entry of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (!entry.isFile() && isWalLikeName(entry.name)) {
      listing.irregular.push({ fileName: entry.name, kind: entryKind(entry) });
      continue;
    }
    if (!entry.isFile()) {
      listing.stray.push(entry.isDirectory() ? `${entry.name}/` : entry.name);
      continue;
    }
    if (parseArchiveFileName(entry.name) === undefined && parseHistoryFileName(entry.name) === undefined) {
      addToListing(listing, entry.name, { size: 0, mtimeMs: 0 });
      continue;
    }
    const stats = await statOrUndefined(join(directory, entry.name));
    if (stats === undefined) continue;
    if (!stats.isFile()) {
      listing.irregular.push({ fileName: entry.name, kind: entryKind(stats) });
      continue;
    }
    addToListing(listing, entry.name, stats);
  }
  return listing;
}

export function emptyListing(): ArchiveListing {
  return { segments: [], histories: [], backupHistories: [], irregular: [], stray: [] };
}

/**
 * Sorts one regular file (or a bucket's object) into the listing; call in name order. Only
 * segments and timeline histories keep their size and age.
 */
export function addToListing(
  listing: ArchiveListing,
  name: string,
  stats: { size: number; mtimeMs: number },
): void {
  const segment = parseArchiveFileName(name);
  const historyTimeline = parseHistoryFileName(name);
  if (segment === undefined && historyTimeline === undefined) {
    (BACKUP_HISTORY_NAME.test(name) ? listing.backupHistories : listing.stray).push(name);
    return;
  }
  if (segment !== undefined) {
    const timeline = Number.parseInt(segment.walFileName.slice(0, 8), 16);
    if (timeline === 0) {
      listing.stray.push(name);
      return;
    }
    listing.segments.push({
      fileName: name,
      walFileName: segment.walFileName,
      timeline,
      compression: segment.compression,
      partial: segment.partial,
      size: stats.size,
      mtimeMs: stats.mtimeMs,
    });
  } else if (historyTimeline !== undefined) {
    listing.histories.push({
      fileName: name,
      timeline: historyTimeline,
      size: stats.size,
      mtimeMs: stats.mtimeMs,
    });
  }
}
