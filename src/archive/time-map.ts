/**
 * The time map of an archive: for each segment file (complete or .partial), the transaction ends
 * (commit/abort, prepared or not) it holds — first, last and latest by time — its restore points,
 * checkpoints and backup ends, read from the WAL records themselves. It answers "which files
 * hold 14:05 yesterday" without replaying anything (see recovery-target.ts).
 *
 * Building it means reading every record once, so it is kept as an index OUTSIDE the archive
 * (pg_receivewal-layout consumers such as Barman move unknown files out of a WAL directory), next
 * to the hook state: $STATE_DIRECTORY, else $XDG_STATE_HOME/pgwal or ~/.local/state/pgwal, one file
 * per archive. Each entry is keyed by file name, size and mtime — and those of the file before it,
 * because an event belongs to the file its record ENDS in, and a record begun in the previous file
 * is only read whole when that file is read first. A changed, new or re-neighboured file is re-read;
 * a missing or unreadable index is rebuilt; the index is written atomically (temp, fsync, rename,
 * directory fsync). Files are opened only through archive-file.ts (regular files, bounded
 * decompression).
 */
import { readFile } from "node:fs/promises";
import { formatLsn, segmentStartLsn } from "../lsn.js";
import { perArchiveStateFile, writeStateFileDurably } from "../state-files.js";
import { nodeFileSystem } from "../wal/fsync.js";
import { parseWalFileName } from "../wal/names.js";
import { LONG_PAGE_HEADER_SIZE, parseWalPageHeader, WAL_BLOCK_SIZE } from "../wal/page-header.js";
import type { WalRecordEvent } from "../wal/records/record-events.js";
import { WalRecordReader } from "../wal/records/record-reader.js";
import { readSegmentFile } from "./archive-file.js";
import { listArchiveDirectory, type SegmentFileEntry } from "./archive-listing.js";
import { type PgTime, pgTimeFromUnixSeconds } from "./pg-time.js";

export interface TimedLsn {
  lsn: string;
  /** Microseconds since 2000-01-01 UTC (PostgreSQL's TimestampTz). */
  time: PgTime;
}

export interface TimeMapSegment {
  file: string;
  walFileName: string;
  timeline: number;
  segNo: string;
  partial: boolean;
  size: number;
  mtimeMs: number;
  /** "name:size:mtime" of the same timeline's file for the segment before, or null. */
  previous: string | null;
  /** Records read whole in this file (those ending in it). */
  records: number;
  /** Transaction ends (commit, abort, commit/abort prepared) ending in this file. */
  transactionEnds: number;
  firstEnd: TimedLsn | null;
  lastEnd: TimedLsn | null;
  /** The end with the latest time (times are not strictly ordered by LSN). */
  latestEnd: TimedLsn | null;
  restorePoints: (TimedLsn & { name: string })[];
  checkpoints: (TimedLsn & { redo: string; shutdown: boolean })[];
  backupEnds: { lsn: string; backupStart: string }[];
  /** Where the WAL in this file ends (a .partial, or after a problem); null when it runs to the end. */
  walEnd: string | null;
  /** Why the records could not all be read (CRC, chain, unreadable file…): recovery would stop here. */
  problem: string | null;
}

export interface TimeMap {
  directory: string;
  segmentSize: number | null;
  segments: TimeMapSegment[];
}

export interface TimeMapOptions {
  /** The index file (default: defaultTimeMapFile). */
  indexFile?: string;
  env?: NodeJS.ProcessEnv;
  /** fsync of a directory (tests record the calls). */
  fsyncDirectory?: (directory: string) => Promise<void>;
}

export interface TimeMapResult {
  map: TimeMap;
  indexFile: string;
  /** Segment files read this time (0 when the index was up to date). */
  filesRead: number;
  /** Why the index could not be written (the map is still correct), or null. */
  saveError: string | null;
}

const INDEX_VERSION = 1;

/** Same place and key as the hook state (defaultHookStateFile): outside the archive, one per archive. */
export function defaultTimeMapFile(directory: string, env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return perArchiveStateFile("timemap", directory, env);
}

function keyOf(entry: { fileName: string; size: number; mtimeMs: number }): string {
  return `${entry.fileName}:${entry.size}:${entry.mtimeMs}`;
}

async function loadIndex(file: string): Promise<Map<string, TimeMapSegment>> {
  const entries = new Map<string, TimeMapSegment>();
  try {
    const parsed = JSON.parse(await readFile(file, "utf8")) as {
      version?: number;
      segments?: TimeMapSegment[];
    };
    if (parsed.version !== INDEX_VERSION || !Array.isArray(parsed.segments)) return entries;
    for (const segment of parsed.segments) {
      if (isSegmentEntry(segment)) entries.set(keyOf({ fileName: segment.file, ...segment }), segment);
    }
  } catch {
    // Missing, unreadable or damaged: it is only a cache, rebuilt from the WAL.
  }
  return entries;
}

const isTimed = (value: unknown): boolean =>
  value === null ||
  (typeof value === "object" &&
    typeof Reflect.get(value, "lsn") === "string" &&
    Number.isFinite(Reflect.get(value, "time")));

const isListOf = (value: unknown, check: (item: object) => boolean): boolean =>
  Array.isArray(value) && value.every((item) => typeof item === "object" && item !== null && check(item));

/** An entry of the shape this version writes (anything else is re-read from the WAL). */
function isSegmentEntry(value: unknown): value is TimeMapSegment {
  if (typeof value !== "object" || value === null) return false;
  const entry = value as Record<string, unknown>;
  return (
    typeof entry.file === "string" &&
    typeof entry.walFileName === "string" &&
    typeof entry.segNo === "string" &&
    /^\d+$/.test(entry.segNo) &&
    Number.isInteger(entry.timeline) &&
    typeof entry.partial === "boolean" &&
    typeof entry.size === "number" &&
    typeof entry.mtimeMs === "number" &&
    (entry.previous === null || typeof entry.previous === "string") &&
    isTimed(entry.firstEnd) &&
    isTimed(entry.lastEnd) &&
    isTimed(entry.latestEnd) &&
    isListOf(entry.restorePoints, (p) => isTimed(p) && typeof Reflect.get(p, "name") === "string") &&
    isListOf(entry.checkpoints, (c) => isTimed(c) && typeof Reflect.get(c, "redo") === "string") &&
    isListOf(
      entry.backupEnds,
      (b) => typeof Reflect.get(b, "lsn") === "string" && typeof Reflect.get(b, "backupStart") === "string",
    ) &&
    (entry.walEnd === null || typeof entry.walEnd === "string") &&
    (entry.problem === null || typeof entry.problem === "string")
  );
}

function saveIndex(
  file: string,
  map: TimeMap,
  fsyncDirectory: (directory: string) => Promise<void>,
): Promise<void> {
  return writeStateFileDurably(file, JSON.stringify({ version: INDEX_VERSION, ...map }), fsyncDirectory);
}

function emptySegment(entry: SegmentFileEntry, segNo: bigint, previous: string | null): TimeMapSegment {
  return {
    file: entry.fileName,
    walFileName: entry.walFileName,
    timeline: entry.timeline,
    segNo: segNo.toString(),
    partial: entry.partial,
    size: entry.size,
    mtimeMs: entry.mtimeMs,
    previous,
    records: 0,
    transactionEnds: 0,
    firstEnd: null,
    lastEnd: null,
    latestEnd: null,
    restorePoints: [],
    checkpoints: [],
    backupEnds: [],
    walEnd: null,
    problem: null,
  };
}

function addEvent(segment: TimeMapSegment, event: WalRecordEvent): void {
  const lsn = formatLsn(event.lsn);
  switch (event.kind) {
    case "commit":
    case "abort":
    case "commit-prepared":
    case "abort-prepared": {
      const end = { lsn, time: Number(event.time) };
      segment.transactionEnds++;
      segment.firstEnd ??= end;
      segment.lastEnd = end;
      if (segment.latestEnd === null || end.time > segment.latestEnd.time) segment.latestEnd = end;
      return;
    }
    case "restore-point":
      segment.restorePoints.push({ lsn, time: Number(event.time), name: event.name });
      return;
    case "checkpoint":
      segment.checkpoints.push({
        lsn,
        time: pgTimeFromUnixSeconds(Number(event.time)),
        redo: formatLsn(event.redo),
        shutdown: event.shutdown,
      });
      return;
    case "backup-end":
      segment.backupEnds.push({ lsn, backupStart: formatLsn(event.backupStart) });
      return;
    case "switch":
      return;
  }
}

/** The file's content, undefined when it is gone (a .partial renamed, a cleanup), or what went wrong. */
async function contentOf(directory: string, entry: SegmentFileEntry): Promise<Buffer | string | undefined> {
  try {
    return (await readSegmentFile(directory, entry.fileName, entry.compression, entry.partial))?.content;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

/**
 * Reads segment files into map entries. Consecutive files of a timeline share one reader, so a
 * record crossing into the next file is completed without reading anything twice; a file read on
 * its own (its predecessor's entry was current) first has its predecessor fed, events ignored.
 */
class SegmentScanner {
  private reader: WalRecordReader | undefined;
  /** Key of the complete file the reader has just read to its end. */
  private lastKey: string | undefined;
  private target: TimeMapSegment | undefined;

  constructor(
    private readonly directory: string,
    private readonly segmentSize: number,
  ) {}

  private freshReader(): WalRecordReader {
    this.target = undefined;
    return new WalRecordReader({
      segmentSize: this.segmentSize,
      onEvent: (event) => {
        if (this.target !== undefined) addEvent(this.target, event);
      },
    });
  }

  async read(
    entry: SegmentFileEntry,
    segNo: bigint,
    before: { entry: SegmentFileEntry; segNo: bigint } | undefined,
  ): Promise<TimeMapSegment | undefined> {
    const segmentSize = this.segmentSize;
    const segment = emptySegment(entry, segNo, before === undefined ? null : keyOf(before.entry));
    let reader = this.reader;
    if (reader === undefined || before === undefined || this.lastKey !== keyOf(before.entry)) {
      reader = this.freshReader();
      if (before !== undefined && !before.entry.partial) {
        const previous = await contentOf(this.directory, before.entry);
        if (previous instanceof Buffer && previous.length === segmentSize)
          reader.feed(previous, segmentStartLsn(before.segNo, segmentSize));
      }
    }
    this.reader = undefined;
    this.lastKey = undefined;
    const content = await contentOf(this.directory, entry);
    if (content === undefined) return undefined;
    if (typeof content === "string") {
      segment.problem = content;
      return segment;
    }
    this.target = segment;
    const start = segmentStartLsn(segNo, segmentSize);
    const whole = Math.min(content.length - (content.length % WAL_BLOCK_SIZE), segmentSize);
    const recordsBefore = reader.records;
    let stop: ReturnType<WalRecordReader["feed"]>;
    try {
      stop = reader.feed(content.subarray(0, whole), start);
    } catch (error) {
      segment.problem = error instanceof Error ? error.message : String(error);
      return segment;
    } finally {
      this.target = undefined;
    }
    segment.records = reader.records - recordsBefore;
    if (stop?.kind === "problem") {
      const at = formatLsn(stop.problem.lsn);
      segment.problem = stop.problem.message.includes(at)
        ? stop.problem.message
        : `${stop.problem.message} at ${at}`;
      segment.walEnd = formatLsn(stop.problem.lsn);
    } else if (stop?.kind === "end-of-wal") {
      segment.walEnd = formatLsn(stop.lsn);
      if (!entry.partial)
        segment.problem = `WAL ends at ${formatLsn(stop.lsn)}, before the end of the segment`;
    } else if (whole < segmentSize) {
      segment.walEnd = formatLsn(start + BigInt(whole));
      if (!entry.partial) segment.problem = `segment holds ${content.length} of ${segmentSize} bytes`;
    }
    if (!entry.partial && whole === segmentSize) {
      // The next file of this timeline continues where this one ended.
      this.reader = reader;
      this.lastKey = keyOf(entry);
    }
    return segment;
  }
}

async function archiveSegmentSize(
  directory: string,
  segments: readonly SegmentFileEntry[],
): Promise<number | undefined> {
  for (const entry of segments) {
    try {
      const read = await readSegmentFile(
        directory,
        entry.fileName,
        entry.compression,
        entry.partial,
        LONG_PAGE_HEADER_SIZE,
      );
      if (read === undefined || read.content.length < LONG_PAGE_HEADER_SIZE) continue;
      const size = parseWalPageHeader(read.content.subarray(0, LONG_PAGE_HEADER_SIZE)).long?.segmentSize;
      if (size !== undefined) return size;
    } catch {
      // A damaged file says nothing about the archive; verify names it.
    }
  }
  return undefined;
}

/**
 * The time map of the archive in `directory`, from the index where it is current, reading the
 * segment files that are new or changed, and saving the index when anything was read.
 */
export async function archiveTimeMap(
  directory: string,
  options: TimeMapOptions = {},
): Promise<TimeMapResult> {
  const indexFile = options.indexFile ?? (await defaultTimeMapFile(directory, options.env));
  const listing = await listArchiveDirectory(directory);
  const cached = await loadIndex(indexFile);
  const segmentSize = await archiveSegmentSize(directory, listing.segments);
  const map: TimeMap = { directory, segmentSize: segmentSize ?? null, segments: [] };
  if (segmentSize === undefined) return { map, indexFile, filesRead: 0, saveError: null };

  const positioned = listing.segments.flatMap((entry) => {
    const segNo = parseWalFileName(entry.walFileName, segmentSize)?.segNo;
    return segNo === undefined ? [] : [{ entry, segNo }];
  });
  // The complete file of a segment (first of plain/compressed copies) is the one read before the next segment.
  const completeOf = new Map<string, { entry: SegmentFileEntry; segNo: bigint }>();
  for (const item of positioned) {
    const key = `${item.entry.timeline}/${item.segNo}`;
    if (!item.entry.partial && !completeOf.has(key)) completeOf.set(key, item);
  }
  let filesRead = 0;
  const scanner = new SegmentScanner(directory, segmentSize);
  for (const item of positioned) {
    const before = completeOf.get(`${item.entry.timeline}/${item.segNo - 1n}`);
    const previous = before === undefined ? null : keyOf(before.entry);
    const known = cached.get(keyOf(item.entry));
    if (known !== undefined && known.previous === previous && known.segNo === item.segNo.toString()) {
      map.segments.push(known);
      continue;
    }
    const segment = await scanner.read(item.entry, item.segNo, before);
    filesRead++;
    // Gone since the listing: not part of this map (its new name, if any, is read next time).
    if (segment !== undefined) map.segments.push(segment);
  }
  let saveError: string | null = null;
  if (filesRead > 0 || cached.size !== map.segments.length) {
    try {
      await saveIndex(indexFile, map, options.fsyncDirectory ?? nodeFileSystem.fsyncDirectory);
    } catch (error) {
      saveError = error instanceof Error ? error.message : String(error);
    }
  }
  return { map, indexFile, filesRead, saveError };
}
