/**
 * Checks the WAL page headers of one segment's content: what restore verifies before handing a
 * file to the server and what verify reports per file. The segment size is not part of the file
 * name, so it comes from the long header of the first page (xlp_seg_size).
 */
import { formatLsn, isValidSegmentSize, type Lsn, segmentStartLsn } from "../lsn.js";
import { parseWalFileName } from "../wal/names.js";
import {
  KNOWN_XLOG_PAGE_MAGIC,
  LONG_PAGE_HEADER_SIZE,
  parseWalPageHeader,
  SHORT_PAGE_HEADER_SIZE,
  WAL_BLOCK_SIZE,
  type WalPageHeader,
  XLP_LONG_HEADER,
} from "../wal/page-header.js";

export type SegmentProblemKind = "size" | "page-header" | "timeline" | "zero-page" | "file-name";

export interface SegmentProblem {
  kind: SegmentProblemKind;
  message: string;
}

export interface SegmentCheckOptions {
  /** The 24-digit segment name (without ".gz"/".partial"): gives the timeline and, with the size, the position. */
  walFileName: string;
  /** A ".partial" may be shorter than a segment and ends in zero pages. */
  partial: boolean;
  /** Timelines the pages may carry: the file's own and its ancestors. Default: any up to the file's. */
  allowedTimelines?: ReadonlySet<number>;
}

export interface SegmentCheck {
  /** Timeline from the file name. */
  timeline: number;
  /** From the first page's long header; undefined when the content holds no WAL or no valid header. */
  segmentSize?: number;
  segNo?: bigint;
  systemIdentifier?: bigint;
  magic?: number;
  /** Index of the last page holding a non-zero byte; -1 when the content is all zeros. */
  lastNonZeroPage: number;
  /** First LSN after the last non-zero page: an upper bound of where the WAL in this file ends. */
  dataEnd?: Lsn;
  /** Distinct page timelines, in file order. */
  pageTimelines: number[];
  problems: SegmentProblem[];
}

/** More than this many page problems in one file adds only a count: one broken file must not flood a report. */
const MAX_PROBLEMS_PER_FILE = 8;

function isZero(bytes: Buffer): boolean {
  for (let i = 0; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}

function findLastNonZeroPage(content: Buffer): number {
  const pages = Math.ceil(content.length / WAL_BLOCK_SIZE);
  for (let page = pages - 1; page >= 0; page--) {
    if (!isZero(content.subarray(page * WAL_BLOCK_SIZE, (page + 1) * WAL_BLOCK_SIZE))) return page;
  }
  return -1;
}

function hex(value: number): string {
  return `0x${value.toString(16).toUpperCase()}`;
}

/** The short-header fields of a page (parseWalPageHeader would want 40 bytes if a stray long flag is set). */
function shortHeader(page: Buffer): WalPageHeader {
  const copy = Buffer.from(page.subarray(0, SHORT_PAGE_HEADER_SIZE));
  copy.writeUInt16LE(copy.readUInt16LE(2) & ~XLP_LONG_HEADER, 2);
  return parseWalPageHeader(copy);
}

export function checkSegmentContent(content: Buffer, options: SegmentCheckOptions): SegmentCheck {
  const timeline = Number.parseInt(options.walFileName.slice(0, 8), 16);
  const problems: SegmentProblem[] = [];
  let suppressed = 0;
  const report = (kind: SegmentProblemKind, message: string): void => {
    if (problems.length < MAX_PROBLEMS_PER_FILE) problems.push({ kind, message });
    else suppressed++;
  };
  const result: SegmentCheck = {
    timeline,
    lastNonZeroPage: findLastNonZeroPage(content),
    pageTimelines: [],
    problems,
  };

  if (result.lastNonZeroPage < 0) {
    // Readers stop after a first page of zeros, so the length read says nothing about the file's.
    if (!options.partial)
      report("size", content.length === 0 ? "is empty" : "holds no WAL (its first page is all zeros)");
    return result;
  }
  if (content.length < LONG_PAGE_HEADER_SIZE) {
    report("size", `too short for a WAL page header (${content.length} bytes)`);
    return result;
  }
  const first = parseWalPageHeader(content.subarray(0, WAL_BLOCK_SIZE));
  if (!KNOWN_XLOG_PAGE_MAGIC.has(first.magic)) {
    report("page-header", `page 0: unknown WAL page magic ${hex(first.magic)}`);
    return result;
  }
  if (!first.long) {
    report("page-header", `page 0: no long page header (info ${hex(first.info)})`);
    return result;
  }
  result.magic = first.magic;
  result.systemIdentifier = first.long.systemIdentifier;
  if (first.long.blockSize !== WAL_BLOCK_SIZE) {
    report("page-header", `page 0: WAL block size ${first.long.blockSize}, expected ${WAL_BLOCK_SIZE}`);
  }
  if (!isValidSegmentSize(first.long.segmentSize)) {
    report("page-header", `page 0: invalid segment size ${first.long.segmentSize}`);
    return result;
  }
  const segmentSize = first.long.segmentSize;
  result.segmentSize = segmentSize;
  if (options.partial ? content.length > segmentSize : content.length !== segmentSize) {
    report(
      "size",
      `size ${content.length} bytes, expected ${options.partial ? "at most " : ""}${segmentSize}`,
    );
  }
  const position = parseWalFileName(options.walFileName, segmentSize);
  if (position === undefined) {
    report(
      "file-name",
      `"${options.walFileName}" is not a valid segment name for ${segmentSize}-byte segments`,
    );
  } else {
    result.segNo = position.segNo;
  }
  const segmentStart = position === undefined ? undefined : segmentStartLsn(position.segNo, segmentSize);

  const lastPage = Math.min(result.lastNonZeroPage, segmentSize / WAL_BLOCK_SIZE - 1);
  let previousTimeline = 0;
  for (let index = 0; index <= lastPage; index++) {
    const page = content.subarray(index * WAL_BLOCK_SIZE, (index + 1) * WAL_BLOCK_SIZE);
    if (page.length < SHORT_PAGE_HEADER_SIZE) {
      // A partial may stop anywhere, even inside the next page's header: that is where its WAL ends.
      if (!options.partial) report("size", `page ${index}: truncated to ${page.length} bytes`);
      break;
    }
    if (isZero(page)) {
      report("zero-page", `page ${index}: all zeros before the last page holding WAL`);
      continue;
    }
    const header = shortHeader(page);
    if (header.magic !== first.magic) {
      report(
        "page-header",
        `page ${index}: WAL page magic ${hex(header.magic)}, expected ${hex(first.magic)}`,
      );
      continue;
    }
    if (index > 0 && page.readUInt16LE(2) & XLP_LONG_HEADER) {
      report("page-header", `page ${index}: unexpected long page header`);
    }
    if (segmentStart !== undefined) {
      const expected = segmentStart + BigInt(index * WAL_BLOCK_SIZE);
      if (header.pageAddress !== expected) {
        report(
          "page-header",
          `page ${index}: page address ${formatLsn(header.pageAddress)}, expected ${formatLsn(expected)}`,
        );
      }
    }
    const pageTimeline = header.timeline;
    if (pageTimeline !== previousTimeline) {
      if (pageTimeline > timeline) {
        report(
          "timeline",
          `page ${index}: timeline ${pageTimeline} is after the file's timeline ${timeline}`,
        );
      } else if (options.allowedTimelines !== undefined && !options.allowedTimelines.has(pageTimeline)) {
        report(
          "timeline",
          `page ${index}: timeline ${pageTimeline} is not in the history of timeline ${timeline}`,
        );
      } else if (pageTimeline < previousTimeline) {
        report("timeline", `page ${index}: timeline ${pageTimeline} goes back from ${previousTimeline}`);
      }
      if (!result.pageTimelines.includes(pageTimeline)) result.pageTimelines.push(pageTimeline);
      previousTimeline = pageTimeline;
    }
  }
  if (segmentStart !== undefined) {
    result.dataEnd =
      segmentStart + BigInt(Math.min((result.lastNonZeroPage + 1) * WAL_BLOCK_SIZE, segmentSize));
  }
  if (suppressed > 0)
    problems.push({ kind: problems.at(-1)!.kind, message: `… and ${suppressed} more problems` });
  return result;
}
