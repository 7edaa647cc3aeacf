/**
 * `pgwal restore %f %p`: a restore_command. Copies one file from the archive to where the server
 * asked for it, decompressing .gz/.lz4 and standing in NAME.partial for NAME (what the PostgreSQL
 * documentation advises for the last segment of a timeline), after checking the WAL it hands over.
 * The destination only ever appears complete: it is written under a temporary name in the same
 * directory and renamed.
 *
 * Exit codes (RESTORE_EXIT) follow how the startup process reads them: every status from 1 to 125
 * means "not in the archive" (a point-in-time recovery then ends and promotes), while a signal or
 * a status above 125 stops recovery with FATAL. So 1 is kept for a file the archive does not have,
 * and every failure (corrupt file, I/O error, unusable archive, wrong usage) exits 128: above 125,
 * and neither 126/127 (the server logs those as "command not executable"/"command not found") nor
 * 128+N (how a shell reports death by signal N).
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import * as fsp from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { ArchiveError, StorageError, UsageError } from "../errors.js";
import { parseTimelineHistory } from "../protocol/replication.js";
import { ObjectStoreError } from "../store/store-errors.js";
import { fsyncParentDirectory, nodeFileSystem, storageCall } from "../wal/fsync.js";
import { PARTIAL_SUFFIX, parseArchiveFileName, parseHistoryFileName } from "../wal/names.js";
import { type ArchiveSource, archiveSourceOf, TRANSIENT_ERRNOS } from "./archive-source.js";
import { checkSegmentContent } from "./segment-check.js";

export const RESTORE_EXIT = { restored: 0, missing: 1, failed: 128 } as const;

export type RestoreResult =
  | { status: "restored" /** Archive file name the content came from. */; source: string; bytes: number }
  | { status: "missing" };

export interface RestoreOptions {
  /** Called before each archive name is looked up (tests use it to interleave renames or failures). */
  beforeLookup?: (candidate: string) => void | Promise<void>;
}

/** Largest file restore copies verbatim (history and backup files are tiny). */
const MAX_OTHER_FILE = 64 * 1024 * 1024;
/** Waits before each retry of a restore that failed with a transient error. */
const RETRY_DELAYS_MS = [200, 1000, 3000];
const TIMELINE = "(?!00000000)[0-9A-F]{8}";
/** The names the startup process (and pg_rewind) pass as %f: xlog_internal.h's file names. */
const SEGMENT_NAME = new RegExp(`^${TIMELINE}[0-9A-F]{16}$`);
const PARTIAL_NAME = new RegExp(`^(${TIMELINE}[0-9A-F]{16})\\.partial$`);
const BACKUP_HISTORY_NAME = new RegExp(`^${TIMELINE}[0-9A-F]{16}\\.[0-9A-F]{8}\\.backup$`);

type RequestedFile =
  | { kind: "segment"; walFileName: string; partialOnly: boolean }
  | { kind: "history" | "backup-history" };

/**
 * What %f asks for. Anything else is refused: the name is joined to the archive directory, so
 * it must not be able to name a file elsewhere, and PostgreSQL never asks for other names.
 */
export function parseRequestedName(name: string): RequestedFile {
  if (SEGMENT_NAME.test(name)) return { kind: "segment", walFileName: name, partialOnly: false };
  const partial = PARTIAL_NAME.exec(name);
  if (partial) return { kind: "segment", walFileName: partial[1]!, partialOnly: true };
  if (parseHistoryFileName(name) !== undefined) return { kind: "history" };
  if (BACKUP_HISTORY_NAME.test(name)) return { kind: "backup-history" };
  throw new UsageError(
    `invalid WAL file name ${JSON.stringify(name)}: not a name PostgreSQL asks restore_command for`,
  );
}

/** Archive names that can stand for segment `name`, best first: complete files beat partial ones. */
export function segmentCandidates(name: string): string[] {
  const complete = [name, `${name}.gz`, `${name}.lz4`, `${name}.zst`];
  return [...complete, ...complete.map((candidate) => candidate + PARTIAL_SUFFIX)];
}

/** The segment's bytes as the server must see them: checked, a partial padded with zeros to full size. */
function prepareSegment(content: Buffer, name: string, source: string, partial: boolean): Buffer | undefined {
  const check = checkSegmentContent(content, { walFileName: name, partial });
  if (partial && check.lastNonZeroPage < 0) return undefined; // a partial with no WAL yet: nothing to hand over
  if (check.problems.length > 0 || check.segmentSize === undefined) {
    const details = check.problems.map((problem) => problem.message).join("; ");
    throw new ArchiveError(`archived WAL file "${source}" is corrupt: ${details || "no valid WAL"}`);
  }
  if (content.length === check.segmentSize) return content;
  const padded = Buffer.alloc(check.segmentSize);
  content.copy(padded);
  return padded;
}

/** Writes `content` to a fresh temporary file next to `destination`, fsyncs it and renames it into place. */
export async function writeFileAtomically(destination: string, content: Buffer): Promise<void> {
  const temp = join(
    dirname(destination),
    `.${basename(destination)}.pgwal-restore-${process.pid}-${randomBytes(4).toString("hex")}.tmp`,
  );
  const handle = await storageCall("create", temp, () =>
    fsp.open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600),
  );
  let renamed = false;
  try {
    try {
      await storageCall("write", temp, () => handle.writeFile(content));
      await storageCall("fsync", temp, () => handle.sync());
    } finally {
      await storageCall("close", temp, () => handle.close());
    }
    await storageCall("rename", temp, () => fsp.rename(temp, destination));
    renamed = true;
    await fsyncParentDirectory(nodeFileSystem, destination);
  } finally {
    if (!renamed) await fsp.rm(temp, { force: true });
  }
}

/** The first candidate that holds WAL, checked and ready to hand over; undefined when none does. */
async function findSegment(
  source: ArchiveSource,
  requested: { walFileName: string; partialOnly: boolean },
  options: RestoreOptions,
): Promise<{ source: string; content: Buffer } | undefined> {
  const candidates = segmentCandidates(requested.walFileName).filter(
    (candidate) => !requested.partialOnly || candidate.endsWith(PARTIAL_SUFFIX),
  );
  for (const candidate of candidates) {
    await options.beforeLookup?.(candidate);
    const parsed = parseArchiveFileName(candidate)!;
    const read = await source.readSegment(candidate, parsed.compression, parsed.partial);
    if (read === undefined) continue;
    const prepared = prepareSegment(read.content, requested.walFileName, candidate, parsed.partial);
    if (prepared !== undefined) return { source: candidate, content: prepared };
  }
  return undefined;
}

/** A timeline or backup history file, as it is (a timeline history is parsed first). */
async function findVerbatim(
  source: ArchiveSource,
  name: string,
  options: RestoreOptions,
): Promise<{ source: string; content: Buffer } | undefined> {
  await options.beforeLookup?.(name);
  const content = await source.readSmallFile(name, MAX_OTHER_FILE);
  if (content === undefined) return undefined;
  if (parseHistoryFileName(name) !== undefined) {
    try {
      parseTimelineHistory(content.toString("utf8"));
    } catch (error) {
      throw new ArchiveError(`archived timeline history "${name}" is corrupt: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  return { source: name, content };
}

/**
 * One restore. The lookup runs a second time before answering "missing": a receiver renames a
 * finished NAME.partial to NAME once, so a file that existed all along but moved during the first
 * pass (after NAME was looked at, before NAME.partial) is found by the second.
 */
async function attemptRestore(
  source: ArchiveSource,
  requested: RequestedFile,
  fileName: string,
  destination: string,
  options: RestoreOptions,
): Promise<RestoreResult> {
  await source.checkUsable();
  for (let pass = 0; pass < 2; pass++) {
    const found =
      requested.kind === "segment"
        ? await findSegment(source, requested, options)
        : await findVerbatim(source, fileName, options);
    if (found !== undefined) {
      await writeFileAtomically(destination, found.content);
      return { status: "restored", source: found.source, bytes: found.content.length };
    }
    // The archive going away during the lookup must not read as "not there".
    await source.checkUsable();
  }
  return { status: "missing" };
}

function isTransient(error: unknown): boolean {
  if (error instanceof ObjectStoreError) return error.retryable;
  return error instanceof StorageError && error.errno !== undefined && TRANSIENT_ERRNOS.has(error.errno);
}

/**
 * Restores `fileName` (restore_command's %f) from the archive (a directory, or another
 * ArchiveSource such as a bucket) to `destination` (%p).
 * Returns "missing" when the archive does not have it; throws ArchiveError for a corrupt file or
 * an unusable archive, StorageError (or the store's error) for I/O failures (transient ones after
 * a few retries),
 * UsageError for a name PostgreSQL never asks for.
 */
export async function restoreFile(
  archive: string | ArchiveSource,
  fileName: string,
  destination: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  const requested = parseRequestedName(fileName);
  const source = archiveSourceOf(archive);
  for (let attempt = 0; ; attempt++) {
    try {
      return await attemptRestore(source, requested, fileName, destination, options);
    } catch (error) {
      const delay = RETRY_DELAYS_MS[attempt];
      if (delay === undefined || !isTransient(error)) throw error;
      await sleep(delay);
    }
  }
}

/** Exit code for the outcome of restoreFile (see RESTORE_EXIT). */
export function restoreExitCode(outcome: RestoreResult | unknown): number {
  if (typeof outcome === "object" && outcome !== null && "status" in outcome) {
    return outcome.status === "restored" ? RESTORE_EXIT.restored : RESTORE_EXIT.missing;
  }
  return RESTORE_EXIT.failed;
}
