/**
 * `pgwal status DIR [--json]`: what an archive holds at a glance — timelines, the LSN range, how
 * many segments and bytes, how full the partial segment is, and how old the newest data is. Reads
 * only one page header and the newest partial segment, so it stays cheap on large archives.
 */
import { formatLsn, type Lsn, segmentStartLsn } from "../lsn.js";
import { parseWalFileName } from "../wal/names.js";
import { LONG_PAGE_HEADER_SIZE, parseWalPageHeader, WAL_BLOCK_SIZE } from "../wal/page-header.js";
import type { SegmentFileEntry } from "./archive-listing.js";
import { type ArchiveSource, archiveSourceOf } from "./archive-source.js";
import { checkSegmentContent } from "./segment-check.js";

export interface TimelineStatus {
  timeline: number;
  segments: number;
  partials: number;
  firstSegment: string;
  lastSegment: string;
  hasHistory: boolean;
}

export interface PartialStatus {
  file: string;
  timeline: number;
  /** Pages up to the last one holding a non-zero byte. */
  pagesUsed: number;
  usedBytes: number;
  /** usedBytes / segment size, 0..1. */
  fraction: number;
}

export interface ArchiveStatus {
  directory: string;
  segmentSize: number | null;
  systemIdentifier: string | null;
  timelines: TimelineStatus[];
  /** Start of the oldest segment. */
  firstLsn: string | null;
  /** End of the newest data: the end of the newest complete segment, or of the partial's last non-zero page. */
  lastLsn: string | null;
  /** Complete segment files (a segment stored twice, e.g. plain and .gz, counts twice). */
  segmentCount: number;
  partialCount: number;
  /** Bytes on disk of all segment and history files. */
  totalBytes: number;
  partial: PartialStatus | null;
  newestFile: string | null;
  newestModified: string | null;
  /** Seconds since newestModified (0 when it lies in the future). */
  ageSeconds: number | null;
  /** Entries named like WAL that are not regular files (links, FIFOs, devices, directories): never read. */
  irregularFiles: string[];
}

export interface ArchiveStatusOptions {
  /** For tests: the current time in ms. */
  now?: number;
}

/** Segment size and system identifier from the first segment whose first page has a long header. */
async function archiveIdentity(
  source: ArchiveSource,
  segments: readonly SegmentFileEntry[],
): Promise<{ segmentSize?: number; systemIdentifier?: bigint }> {
  for (const entry of segments) {
    let prefix: Buffer | undefined;
    try {
      const read = await source.readSegment(
        entry.fileName,
        entry.compression,
        entry.partial,
        LONG_PAGE_HEADER_SIZE,
      );
      prefix = read?.content.subarray(0, LONG_PAGE_HEADER_SIZE);
    } catch {
      continue; // a damaged file says nothing about the archive; `verify` reports it
    }
    if (prefix === undefined || prefix.length < LONG_PAGE_HEADER_SIZE) continue;
    const header = parseWalPageHeader(prefix);
    if (header.long !== undefined) {
      return { segmentSize: header.long.segmentSize, systemIdentifier: header.long.systemIdentifier };
    }
  }
  return {};
}

function compareEntries(
  a: { segNo: bigint; entry: SegmentFileEntry },
  b: { segNo: bigint; entry: SegmentFileEntry },
): number {
  if (a.segNo !== b.segNo) return a.segNo < b.segNo ? -1 : 1;
  if (a.entry.timeline !== b.entry.timeline) return a.entry.timeline - b.entry.timeline;
  return Number(b.entry.partial) - Number(a.entry.partial); // complete after partial: it is "later" data
}

export async function archiveStatus(
  archive: string | ArchiveSource,
  options: ArchiveStatusOptions = {},
): Promise<ArchiveStatus> {
  const source = archiveSourceOf(archive);
  const directory = source.description;
  const listing = await source.list();
  const { segmentSize, systemIdentifier } = await archiveIdentity(source, listing.segments);
  const historyTimelines = new Set(listing.histories.map((entry) => entry.timeline));

  const timelines = new Map<number, TimelineStatus>();
  for (const entry of listing.segments) {
    const status = timelines.get(entry.timeline) ?? {
      timeline: entry.timeline,
      segments: 0,
      partials: 0,
      firstSegment: entry.walFileName,
      lastSegment: entry.walFileName,
      hasHistory: entry.timeline === 1 || historyTimelines.has(entry.timeline),
    };
    if (entry.partial) status.partials++;
    else status.segments++;
    if (entry.walFileName < status.firstSegment) status.firstSegment = entry.walFileName;
    if (entry.walFileName > status.lastSegment) status.lastSegment = entry.walFileName;
    timelines.set(entry.timeline, status);
  }

  let firstLsn: Lsn | undefined;
  let lastLsn: Lsn | undefined;
  let partial: PartialStatus | null = null;
  if (segmentSize !== undefined) {
    const positioned = listing.segments.flatMap((entry) => {
      const position = parseWalFileName(entry.walFileName, segmentSize);
      return position === undefined ? [] : [{ entry, segNo: position.segNo }];
    });
    positioned.sort(compareEntries);
    const oldest = positioned[0];
    const newest = positioned.at(-1);
    if (oldest !== undefined) firstLsn = segmentStartLsn(oldest.segNo, segmentSize);
    if (newest !== undefined) lastLsn = segmentStartLsn(newest.segNo + 1n, segmentSize);
    const newestPartial = positioned.filter(({ entry }) => entry.partial).at(-1);
    if (newestPartial !== undefined) {
      partial = await partialStatus(source, newestPartial.entry, segmentSize);
      if (newest === newestPartial) {
        lastLsn = segmentStartLsn(newestPartial.segNo, segmentSize) + BigInt(partial?.usedBytes ?? 0);
      }
    }
  }

  const newestEntry = [...listing.segments, ...listing.histories].reduce<
    { fileName: string; mtimeMs: number } | undefined
  >((newest, entry) => (newest === undefined || entry.mtimeMs > newest.mtimeMs ? entry : newest), undefined);
  const now = options.now ?? Date.now();
  const complete = listing.segments.filter((entry) => !entry.partial);
  return {
    directory,
    segmentSize: segmentSize ?? null,
    systemIdentifier: systemIdentifier?.toString() ?? null,
    timelines: [...timelines.values()].sort((a, b) => a.timeline - b.timeline),
    firstLsn: firstLsn === undefined ? null : formatLsn(firstLsn),
    lastLsn: lastLsn === undefined ? null : formatLsn(lastLsn),
    segmentCount: complete.length,
    partialCount: listing.segments.length - complete.length,
    totalBytes: [...listing.segments, ...listing.histories].reduce((sum, entry) => sum + entry.size, 0),
    partial,
    newestFile: newestEntry?.fileName ?? null,
    newestModified: newestEntry === undefined ? null : new Date(newestEntry.mtimeMs).toISOString(),
    ageSeconds:
      newestEntry === undefined ? null : Math.max(0, Math.floor((now - newestEntry.mtimeMs) / 1000)),
    irregularFiles: listing.irregular.map((entry) => entry.fileName),
  };
}

async function partialStatus(
  source: ArchiveSource,
  entry: SegmentFileEntry,
  segmentSize: number,
): Promise<PartialStatus | null> {
  let content: Buffer | undefined;
  try {
    content = (await source.readSegment(entry.fileName, entry.compression, entry.partial))?.content;
  } catch {
    return null;
  }
  if (content === undefined) return null;
  const check = checkSegmentContent(content, { walFileName: entry.walFileName, partial: true });
  const pagesUsed = check.lastNonZeroPage + 1;
  const usedBytes = Math.min(pagesUsed * WAL_BLOCK_SIZE, segmentSize);
  return {
    file: entry.fileName,
    timeline: entry.timeline,
    pagesUsed,
    usedBytes,
    fraction: usedBytes / segmentSize,
  };
}

function formatBytes(bytes: number): string {
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${unit === 0 ? value : value.toFixed(1)} ${units[unit]}`;
}

/** The readable form (what `pgwal status` prints without --json). */
export function formatArchiveStatus(status: ArchiveStatus): string {
  const lines = [`archive ${status.directory}`];
  if (status.segmentSize === null) {
    lines.push("  no WAL segments");
  } else {
    lines.push(
      `  system identifier ${status.systemIdentifier}, segment size ${formatBytes(status.segmentSize)}`,
    );
    lines.push(`  WAL from ${status.firstLsn} to ${status.lastLsn}`);
  }
  for (const timeline of status.timelines) {
    lines.push(
      `  timeline ${timeline.timeline}: ${timeline.segments} segment(s), ${timeline.partials} partial, ${timeline.firstSegment} .. ${timeline.lastSegment}${timeline.hasHistory ? "" : " (no history file)"}`,
    );
  }
  lines.push(
    `  ${status.segmentCount} segment(s), ${status.partialCount} partial, ${formatBytes(status.totalBytes)} on disk`,
  );
  if (status.partial !== null) {
    lines.push(
      `  partial ${status.partial.file}: ${formatBytes(status.partial.usedBytes)} used (${(status.partial.fraction * 100).toFixed(1)}%)`,
    );
  }
  if (status.irregularFiles.length > 0) {
    lines.push(
      `  problem: ${status.irregularFiles.length} entr${status.irregularFiles.length === 1 ? "y" : "ies"} named like WAL but not regular files (not read): ${status.irregularFiles.join(", ")}`,
    );
  }
  if (status.newestFile !== null) {
    lines.push(
      `  newest file ${status.newestFile}, modified ${status.newestModified} (${status.ageSeconds} s ago)`,
    );
  }
  return `${lines.join("\n")}\n`;
}

export function archiveStatusJson(status: ArchiveStatus): string {
  return `${JSON.stringify(status, null, 2)}\n`;
}
