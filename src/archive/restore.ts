/**
 * `pgwal restore %f %p`: a restore_command. Copies one file from the archive to where the server
 * asked for it, decompressing .gz/.lz4 and standing in NAME.partial for NAME (what the PostgreSQL
 * documentation advises for the last segment of a timeline), after checking the WAL it hands over.
 * The destination only ever appears complete: it is written under a temporary name in the same
 * directory and renamed.
 *
 * Intended exit codes (RESTORE_EXIT): 0 restored; 1 not in the archive, printing nothing (recovery
 * takes that as the end of the archive); 3 corrupt file or I/O failure, with a message. Codes
 * above 125 must be avoided: the startup process treats them like a signal and stops with FATAL.
 * Any other non-zero code is likewise "not restored", so recovery goes on with pg_wal or streaming
 * rather than replaying a corrupt file.
 */
import { randomBytes } from "node:crypto";
import { constants } from "node:fs";
import * as fsp from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { ArchiveError, UsageError } from "../errors.js";
import { parseTimelineHistory } from "../protocol/replication.js";
import { fsyncParentDirectory, nodeFileSystem, storageCall } from "../wal/fsync.js";
import { PARTIAL_SUFFIX, parseHistoryFileName, WAL_FILE_NAME_LENGTH } from "../wal/names.js";
import { type ArchiveSource, directorySource } from "./archive-source.js";
import { checkSegmentContent } from "./segment-check.js";

export const RESTORE_EXIT = { restored: 0, missing: 1, failed: 3 } as const;

export type RestoreResult =
  | { status: "restored" /** Archive file name the content came from. */; source: string; bytes: number }
  | { status: "missing" };

const SEGMENT_NAME = /^[0-9A-F]{24}$/;
/** Largest file restore copies verbatim (history and backup files are tiny). */
const MAX_OTHER_FILE = 64 * 1024 * 1024;

/** Archive names that can stand for segment `name`, best first: complete files beat partial ones. */
export function segmentCandidates(name: string): string[] {
  const complete = [name, `${name}.gz`, `${name}.lz4`];
  return [...complete, ...complete.map((candidate) => candidate + PARTIAL_SUFFIX)];
}

function checkRequestedName(name: string): void {
  if (name.length === 0 || name.includes("/") || name.includes("\\") || name === "." || name === "..") {
    throw new UsageError(`invalid WAL file name "${name}"`);
  }
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

async function restoreSegment(
  source: ArchiveSource,
  name: string,
  destination: string,
): Promise<RestoreResult> {
  for (const candidate of segmentCandidates(name)) {
    const content = await source.readContent(candidate);
    if (content === undefined) continue;
    const prepared = prepareSegment(content, name, candidate, candidate.endsWith(PARTIAL_SUFFIX));
    if (prepared === undefined) continue;
    await writeFileAtomically(destination, prepared);
    return { status: "restored", source: candidate, bytes: prepared.length };
  }
  return { status: "missing" };
}

async function restoreVerbatim(
  source: ArchiveSource,
  name: string,
  destination: string,
): Promise<RestoreResult> {
  const content = await source.readSmallFile(name, MAX_OTHER_FILE);
  if (content === undefined) return { status: "missing" };
  if (parseHistoryFileName(name) !== undefined) {
    try {
      parseTimelineHistory(content.toString("utf8"));
    } catch (error) {
      throw new ArchiveError(`archived timeline history "${name}" is corrupt: ${(error as Error).message}`, {
        cause: error,
      });
    }
  }
  await writeFileAtomically(destination, content);
  return { status: "restored", source: name, bytes: content.length };
}

/**
 * Restores `fileName` (restore_command's %f) from the archive (a directory, or another
 * ArchiveSource such as a bucket) to `destination` (%p).
 * Returns "missing" when the archive does not have it; throws ArchiveError for a corrupt file,
 * StorageError for I/O failures, UsageError for a name that is not a plain file name.
 */
export async function restoreFile(
  directory: string | ArchiveSource,
  fileName: string,
  destination: string,
): Promise<RestoreResult> {
  checkRequestedName(fileName);
  const source = typeof directory === "string" ? directorySource(directory) : directory;
  if (fileName.length === WAL_FILE_NAME_LENGTH && SEGMENT_NAME.test(fileName)) {
    return restoreSegment(source, fileName, destination);
  }
  return restoreVerbatim(source, fileName, destination);
}

/** Exit code for the outcome of restoreFile (see RESTORE_EXIT). */
export function restoreExitCode(outcome: RestoreResult | unknown): number {
  if (typeof outcome === "object" && outcome !== null && "status" in outcome) {
    return outcome.status === "restored" ? RESTORE_EXIT.restored : RESTORE_EXIT.missing;
  }
  return RESTORE_EXIT.failed;
}
