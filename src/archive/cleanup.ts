/**
 * Retention: which files of an archive are no longer needed, and removing them.
 *
 * `--before WALFILE` follows pg_archivecleanup: every complete segment whose position (the name
 * without its timeline) precedes WALFILE's goes, whatever its timeline or compression; a `.backup`
 * file name stands for the segment its backup starts in. `--keep DURATION` keeps the WAL of the
 * last DURATION, judged by when each segment was completed (its modification time): the segments
 * completed earlier than that, oldest first, go — only a run from the oldest end, so the archive
 * never gets a hole. Given both, a file goes only if both allow it.
 *
 * Never removed: the newest complete segment (the start point of the next receiver run), any
 * `.partial`, and timeline history files (every kept timeline may need its ancestors'; they are
 * small). A `.backup` file goes once the segment its backup starts in is gone (it describes a base
 * backup that can no longer be restored from this archive).
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { fsyncParentDirectory, nodeFileSystem, storageCall } from "../wal/fsync.js";
import type { ArchiveListing, SegmentFileEntry } from "./archive-listing.js";

export interface CleanupCriteria {
  /** 24-digit segment name: complete segments before its position go. */
  before?: string;
  /** Keep segments completed within this many milliseconds of `now`. */
  keepMs?: number;
  /** Unix milliseconds; the clock `keepMs` is measured against. */
  now: number;
}

export interface RemovableFile {
  fileName: string;
  /** Bytes on disk, for segments (backup history files are a few hundred bytes). */
  bytes?: number;
}

export interface CleanupPlan {
  remove: RemovableFile[];
  /** Complete segments kept (for the summary). */
  keptSegments: number;
  /** The oldest segment kept, by position: where recovery from this archive can start. */
  oldestKept: string | null;
}

/** A WAL file's position without its timeline: 16 hex digits that sort as the position does. */
function positionPart(walFileName: string): string {
  return walFileName.slice(8, 24);
}

function bySegmentOrder(a: SegmentFileEntry, b: SegmentFileEntry): number {
  const byPosition = positionPart(a.walFileName).localeCompare(positionPart(b.walFileName));
  return byPosition !== 0 ? byPosition : a.timeline - b.timeline;
}

const SEGMENT_ARGUMENT = /^([0-9A-F]{24})(?:\.gz|\.lz4)?(?:\.partial)?$/;
const BACKUP_ARGUMENT = /^([0-9A-F]{24})\.[0-9A-F]{8}\.backup$/;

/**
 * The segment name a `--before` argument stands for: a WAL file name (compression and `.partial`
 * suffixes allowed, as archive_cleanup_command's %r or a file listing gives them) or a backup
 * history file name. Undefined for anything else.
 */
export function parseCleanupBoundary(argument: string): string | undefined {
  return (SEGMENT_ARGUMENT.exec(argument) ?? BACKUP_ARGUMENT.exec(argument))?.[1];
}

/** Decides what goes; pure, so every rule is testable on a listing alone. */
export function planCleanup(listing: ArchiveListing, criteria: CleanupCriteria): CleanupPlan {
  const complete = listing.segments.filter((segment) => !segment.partial).sort(bySegmentOrder);
  const newest = complete.at(-1);
  const keepFrom = criteria.keepMs === undefined ? undefined : criteria.now - criteria.keepMs;
  const removed = new Set<SegmentFileEntry>();
  for (const segment of complete) {
    if (segment === newest) break;
    // --keep removes only a run from the oldest end: the first segment too young ends it.
    if (keepFrom !== undefined && segment.mtimeMs >= keepFrom) break;
    if (criteria.before !== undefined && positionPart(segment.walFileName) >= positionPart(criteria.before))
      continue;
    removed.add(segment);
  }
  const kept = listing.segments.filter((segment) => !removed.has(segment)).sort(bySegmentOrder);
  const oldestKept = kept[0]?.walFileName ?? null;
  const remove: RemovableFile[] = [...removed].map((segment) => ({
    fileName: segment.fileName,
    bytes: segment.size,
  }));
  if (oldestKept !== null) {
    for (const backup of listing.backupHistories) {
      if (positionPart(backup) < positionPart(oldestKept)) remove.push({ fileName: backup });
    }
  }
  return { remove, keptSegments: complete.length - removed.size, oldestKept };
}

/**
 * Removes the planned files, then fsyncs the directory once so the removals are durable together.
 * A file already gone (another cleanup) is not an error.
 */
export async function removeArchiveFiles(directory: string, files: readonly RemovableFile[]): Promise<void> {
  for (const file of files) {
    const path = join(directory, file.fileName);
    await storageCall("remove", path, () =>
      fsp.unlink(path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error;
      }),
    );
  }
  if (files.length > 0) await fsyncParentDirectory(nodeFileSystem, join(directory, files[0]!.fileName));
}
