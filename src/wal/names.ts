/**
 * WAL segment and timeline-history file names, as PostgreSQL spells them (xlog_internal.h):
 * a segment is TTTTTTTT (timeline) + 8 hex digits (segNo / segments per 4 GiB "xlog id")
 * + 8 hex digits (segNo % segments per xlog id), upper-case.
 */

export const PARTIAL_SUFFIX = ".partial";

/** Length of a segment file name without suffixes (XLOG_FNAME_LEN). */
export const WAL_FILE_NAME_LENGTH = 24;

const WAL_FILE_NAME = /^[0-9A-F]{24}$/;
const ARCHIVE_FILE_NAME = /^([0-9A-F]{24})(\.gz|\.lz4|\.zst)?(\.partial)?$/;
const HISTORY_FILE_NAME = /^([0-9A-F]{8})\.history$/;
const MAX_UINT32 = 0xffff_ffff;

function hex8(value: number | bigint): string {
  return value.toString(16).toUpperCase().padStart(8, "0");
}

/** Segments per 4 GiB of WAL (XLogSegmentsPerXLogId). */
function segmentsPerXLogId(segmentSize: number): bigint {
  return 0x1_0000_0000n / BigInt(segmentSize);
}

function checkTimeline(timeline: number): void {
  if (!Number.isInteger(timeline) || timeline < 1 || timeline > MAX_UINT32) {
    throw new RangeError(`invalid timeline ${timeline}`);
  }
}

/** XLogFileName: the segment file name for `segNo` on `timeline`. */
export function walFileName(timeline: number, segNo: bigint, segmentSize: number): string {
  checkTimeline(timeline);
  const perId = segmentsPerXLogId(segmentSize);
  const xlogId = segNo / perId;
  if (segNo < 0n || xlogId > BigInt(MAX_UINT32))
    throw new RangeError(`segment number out of range: ${segNo}`);
  return hex8(timeline) + hex8(xlogId) + hex8(segNo % perId);
}

/**
 * Inverse of walFileName. Undefined for anything that is not exactly 24 upper-case hex digits,
 * for timeline 0, and for a low part that cannot exist with this segment size.
 */
export function parseWalFileName(
  name: string,
  segmentSize: number,
): { timeline: number; segNo: bigint } | undefined {
  if (!WAL_FILE_NAME.test(name)) return undefined;
  const timeline = Number.parseInt(name.slice(0, 8), 16);
  const xlogId = BigInt(`0x${name.slice(8, 16)}`);
  const low = BigInt(`0x${name.slice(16, 24)}`);
  const perId = segmentsPerXLogId(segmentSize);
  if (timeline === 0 || low >= perId) return undefined;
  return { timeline, segNo: xlogId * perId + low };
}

/** TLHistoryFileName: "TTTTTTTT.history". */
export function historyFileName(timeline: number): string {
  checkTimeline(timeline);
  return `${hex8(timeline)}.history`;
}

/** Timeline of a "TTTTTTTT.history" name, or undefined. */
export function parseHistoryFileName(name: string): number | undefined {
  const match = HISTORY_FILE_NAME.exec(name);
  if (!match) return undefined;
  const timeline = Number.parseInt(match[1]!, 16);
  return timeline === 0 ? undefined : timeline;
}

export type ArchiveEntryKind = "complete" | "partial";

export interface ParsedArchiveName {
  /** The 24-digit segment name, without suffixes. */
  walFileName: string;
  compression: "none" | "gzip" | "lz4" | "zstd";
  partial: boolean;
}

/**
 * Recognises the names pg_receivewal writes (is_xlogfilename): 24 upper-case hex digits,
 * optionally ".gz" or ".lz4" (or pgwal's ".zst"), optionally ".partial" after that.
 */
export function parseArchiveFileName(fileName: string): ParsedArchiveName | undefined {
  const match = ARCHIVE_FILE_NAME.exec(fileName);
  if (!match) return undefined;
  const compression =
    match[2] === ".gz" ? "gzip" : match[2] === ".lz4" ? "lz4" : match[2] === ".zst" ? "zstd" : "none";
  return { walFileName: match[1]!, compression, partial: match[3] !== undefined };
}
