/**
 * `pgwal verify DIR [--from LSN --to LSN] [--json]`: checks every segment of an archive (size, page
 * headers, timelines, system identifier), the timeline histories, and that no segment is missing
 * on the way to the newest timeline. The report is plain data (LSNs and identifiers as text) so
 * that it can be printed as JSON as it is; formatVerifyReport gives the readable form.
 */
import { StorageError } from "../errors.js";
import { formatLsn, type Lsn, maxLsn, minLsn, segmentNumberOf, segmentStartLsn } from "../lsn.js";
import type { TimelineHistoryEntry } from "../protocol/replication.js";
import { ObjectStoreError } from "../store/store-errors.js";
import { historyFileName, parseWalFileName, walFileName } from "../wal/names.js";
import { NotRegularFileError } from "./archive-file.js";
import type { SegmentFileEntry } from "./archive-listing.js";
import { type ArchiveSource, archiveSourceOf } from "./archive-source.js";
import { checkSegmentContent, type SegmentCheck } from "./segment-check.js";
import { expectedTimelineOf, isOnPath, readTimelineHistory, recoveryPath } from "./timeline-histories.js";

export type VerifyProblemKind =
  | "unreadable"
  | "not-regular-file"
  | "size"
  | "page-header"
  | "timeline"
  | "zero-page"
  | "file-name"
  | "segment-size"
  | "system-identifier"
  | "missing-history"
  | "bad-history"
  | "gap"
  | "range";

export interface VerifyProblem {
  kind: VerifyProblemKind;
  /** Archive file the problem is about, when there is one. */
  file?: string;
  message: string;
}

export interface VerifyOptions {
  /** Check that everything from `from` up to `to` (on the newest timeline's path) is in the archive. */
  from?: Lsn;
  to?: Lsn;
}

export interface TimelineSummary {
  timeline: number;
  segments: number;
  firstSegment: string;
  lastSegment: string;
  hasHistory: boolean;
}

export interface PartialSegmentInfo {
  file: string;
  timeline: number;
  /** End of the last non-zero page: WAL in the file ends at or before it. */
  dataEnd: string | null;
}

export interface VerifyReport {
  ok: boolean;
  directory: string;
  segmentSize: number | null;
  systemIdentifier: string | null;
  filesChecked: number;
  timelines: TimelineSummary[];
  /** Newest timeline: gaps are looked for on the path that leads to it. */
  targetTimeline: number | null;
  partialSegments: PartialSegmentInfo[];
  strayFiles: string[];
  range: { from: string; to: string; timeline: number; missing: string[] } | null;
  problems: VerifyProblem[];
  /** Informative findings that do not make the archive unusable. */
  notes: string[];
}

interface CheckedSegment {
  entry: SegmentFileEntry;
  check?: SegmentCheck;
  segNo?: bigint;
}

/** Most frequent value; ties go to the one seen first. */
function mostCommon<T>(values: readonly T[]): T | undefined {
  const counts = new Map<T, number>();
  let best: T | undefined;
  for (const value of values) {
    const count = (counts.get(value) ?? 0) + 1;
    counts.set(value, count);
    if (best === undefined || count > counts.get(best)!) best = value;
  }
  return best;
}

async function readHistories(
  source: ArchiveSource,
  timelines: Iterable<number>,
  problems: VerifyProblem[],
): Promise<Map<number, TimelineHistoryEntry[]>> {
  const histories = new Map<number, TimelineHistoryEntry[]>();
  for (const timeline of timelines) {
    if (timeline === 1) continue;
    const file = historyFileName(timeline);
    try {
      const entries = await readTimelineHistory(source, timeline);
      if (entries !== undefined) histories.set(timeline, entries);
    } catch (error) {
      if (error instanceof NotRegularFileError) {
        problems.push({ kind: "not-regular-file", file, message: error.message });
      } else if (error instanceof StorageError || error instanceof ObjectStoreError) {
        problems.push({ kind: "unreadable", file, message: error.message });
      } else {
        problems.push({ kind: "bad-history", file, message: `${file}: ${(error as Error).message}` });
      }
    }
  }
  return histories;
}

function allowedTimelines(timeline: number, histories: Map<number, TimelineHistoryEntry[]>): Set<number> {
  return new Set([timeline, ...(histories.get(timeline) ?? []).map((entry) => entry.timeline)]);
}

async function checkSegments(
  source: ArchiveSource,
  segments: readonly SegmentFileEntry[],
  histories: Map<number, TimelineHistoryEntry[]>,
  problems: VerifyProblem[],
): Promise<CheckedSegment[]> {
  const checked: CheckedSegment[] = [];
  for (const entry of segments) {
    let content: Buffer | undefined;
    try {
      content = (await source.readSegment(entry.fileName, entry.compression, entry.partial))?.content;
    } catch (error) {
      const kind = error instanceof NotRegularFileError ? "not-regular-file" : "unreadable";
      problems.push({ kind, file: entry.fileName, message: (error as Error).message });
      checked.push({ entry });
      continue;
    }
    if (content === undefined) continue; // removed while we looked
    const check = checkSegmentContent(content, {
      walFileName: entry.walFileName,
      partial: entry.partial,
      allowedTimelines: allowedTimelines(entry.timeline, histories),
    });
    for (const problem of check.problems) problems.push({ ...problem, file: entry.fileName });
    checked.push({ entry, check });
  }
  return checked;
}

/** Flags files whose segment size or system identifier differ from the rest of the archive. */
function checkArchiveConsistency(
  checked: CheckedSegment[],
  problems: VerifyProblem[],
): { segmentSize?: number; systemIdentifier?: bigint } {
  const segmentSize = mostCommon(
    checked.flatMap(({ check }) => (check?.segmentSize ? [check.segmentSize] : [])),
  );
  const systemIdentifier = mostCommon(
    checked.flatMap(({ check }) => (check?.systemIdentifier !== undefined ? [check.systemIdentifier] : [])),
  );
  for (const item of checked) {
    const { check, entry } = item;
    if (check?.segmentSize !== undefined && check.segmentSize !== segmentSize) {
      problems.push({
        kind: "segment-size",
        file: entry.fileName,
        message: `segment size ${check.segmentSize} differs from the archive's ${segmentSize}`,
      });
    }
    if (check?.systemIdentifier !== undefined && check.systemIdentifier !== systemIdentifier) {
      problems.push({
        kind: "system-identifier",
        file: entry.fileName,
        message: `system identifier ${check.systemIdentifier} differs from the archive's ${systemIdentifier} (WAL of another cluster)`,
      });
    }
    if (segmentSize !== undefined) item.segNo = parseWalFileName(entry.walFileName, segmentSize)?.segNo;
  }
  return { segmentSize, systemIdentifier };
}

/** Describes runs of missing segment numbers between consecutive present ones. */
function reportGaps(
  present: readonly bigint[],
  timelineOf: (segNo: bigint) => number,
  segmentSize: number,
  problems: VerifyProblem[],
): void {
  for (let i = 1; i < present.length; i++) {
    const previous = present[i - 1]!;
    const next = present[i]!;
    if (next - previous <= 1n) continue;
    const first = walFileName(timelineOf(previous + 1n), previous + 1n, segmentSize);
    const last = walFileName(timelineOf(next - 1n), next - 1n, segmentSize);
    const count = next - previous - 1n;
    problems.push({
      kind: "gap",
      file: first,
      message:
        count === 1n ? `segment ${first} is missing` : `${count} segments are missing: ${first} to ${last}`,
    });
  }
}

function sortedUnique(values: Iterable<bigint>): bigint[] {
  return [...new Set(values)].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

export async function verifyArchive(
  archive: string | ArchiveSource,
  options: VerifyOptions = {},
): Promise<VerifyReport> {
  const source = archiveSourceOf(archive);
  const directory = source.description;
  const listing = await source.list();
  const problems: VerifyProblem[] = [];
  const notes: string[] = [];
  const segmentTimelines = new Set(listing.segments.map((entry) => entry.timeline));
  const historyTimelines = new Set(listing.histories.map((entry) => entry.timeline));
  const histories = await readHistories(
    source,
    new Set([...segmentTimelines, ...historyTimelines]),
    problems,
  );
  for (const { fileName, kind } of listing.irregular) {
    const reported = problems.some(
      (problem) => problem.kind === "not-regular-file" && problem.file === fileName,
    );
    if (!reported) {
      problems.push({
        kind: "not-regular-file",
        file: fileName,
        message: new NotRegularFileError(fileName, kind).message,
      });
    }
  }
  for (const timeline of [...segmentTimelines].sort((a, b) => a - b)) {
    if (timeline > 1 && !historyTimelines.has(timeline)) {
      problems.push({
        kind: "missing-history",
        file: historyFileName(timeline),
        message: `timeline ${timeline} has segments but no ${historyFileName(timeline)}`,
      });
    }
  }
  for (const [timeline, entries] of histories) {
    for (const entry of entries) {
      if (entry.timeline > 1 && !historyTimelines.has(entry.timeline)) {
        notes.push(
          `${historyFileName(timeline)} names timeline ${entry.timeline}, whose history file is absent`,
        );
      }
    }
  }

  const checked = await checkSegments(source, listing.segments, histories, problems);
  const { segmentSize, systemIdentifier } = checkArchiveConsistency(checked, problems);

  const partialSegments: PartialSegmentInfo[] = checked
    .filter(({ entry }) => entry.partial)
    .map(({ entry, check }) => ({
      file: entry.fileName,
      timeline: entry.timeline,
      dataEnd: check?.dataEnd !== undefined ? formatLsn(check.dataEnd) : null,
    }));
  for (const partial of partialSegments) {
    notes.push(`partial segment ${partial.file} (WAL up to at most ${partial.dataEnd ?? "its start"})`);
  }
  for (const stray of listing.stray) notes.push(`stray file ${stray}`);

  const byTimeline = new Map<number, CheckedSegment[]>();
  for (const item of checked)
    byTimeline.set(item.entry.timeline, [...(byTimeline.get(item.entry.timeline) ?? []), item]);
  const timelines: TimelineSummary[] = [...byTimeline.keys()]
    .sort((a, b) => a - b)
    .map((timeline) => {
      const names = byTimeline
        .get(timeline)!
        .map(({ entry }) => entry.walFileName)
        .sort();
      return {
        timeline,
        segments: new Set(names).size,
        firstSegment: names[0]!,
        lastSegment: names.at(-1)!,
        hasHistory: timeline === 1 || historyTimelines.has(timeline),
      };
    });

  const targetTimeline = timelines.at(-1)?.timeline;
  let range: VerifyReport["range"] = null;
  if (segmentSize !== undefined && targetTimeline !== undefined) {
    const path = recoveryPath(targetTimeline, histories.get(targetTimeline) ?? [], segmentSize);
    const pathTimelines = new Set(path.map((span) => span.timeline));
    const onPath = checked.filter(
      (item): item is CheckedSegment & { segNo: bigint } =>
        item.segNo !== undefined && isOnPath(path, item.entry.timeline, item.segNo),
    );
    reportGaps(
      sortedUnique(onPath.map((item) => item.segNo)),
      (segNo) => expectedTimelineOf(path, segNo),
      segmentSize,
      problems,
    );
    // Timelines off the path (abandoned branches): each should at least be contiguous in itself.
    for (const [timeline, items] of byTimeline) {
      if (pathTimelines.has(timeline)) continue;
      const segNos = sortedUnique(items.flatMap((item) => (item.segNo === undefined ? [] : [item.segNo])));
      reportGaps(segNos, () => timeline, segmentSize, problems);
    }
    const offPath = checked.filter(
      (item) =>
        item.segNo !== undefined &&
        pathTimelines.has(item.entry.timeline) &&
        !isOnPath(path, item.entry.timeline, item.segNo),
    );
    for (const item of offPath) notes.push(`${item.entry.fileName} lies after its timeline's switch point`);

    if (options.from !== undefined || options.to !== undefined) {
      range = checkRange(options, onPath, path, segmentSize, targetTimeline, problems);
    }
  } else if (options.from !== undefined || options.to !== undefined) {
    problems.push({ kind: "range", message: "the archive holds no usable segment for the requested range" });
  }

  return {
    ok: problems.length === 0,
    directory,
    segmentSize: segmentSize ?? null,
    systemIdentifier: systemIdentifier?.toString() ?? null,
    filesChecked: checked.length,
    timelines,
    targetTimeline: targetTimeline ?? null,
    partialSegments,
    strayFiles: listing.stray,
    range,
    problems,
    notes,
  };
}

/** Most segments one range check walks, so that a typo in --to cannot make verify run for hours. */
const MAX_RANGE_SEGMENTS = 10_000_000n;

function checkRange(
  options: VerifyOptions,
  onPath: readonly (CheckedSegment & { segNo: bigint })[],
  path: ReturnType<typeof recoveryPath>,
  segmentSize: number,
  timeline: number,
  problems: VerifyProblem[],
): NonNullable<VerifyReport["range"]> {
  const present = sortedUnique(onPath.map((item) => item.segNo));
  const from = options.from ?? segmentStartLsn(present[0] ?? 0n, segmentSize);
  const to = options.to ?? segmentStartLsn((present.at(-1) ?? 0n) + 1n, segmentSize);
  const missing: string[] = [];
  if (to < from) {
    problems.push({ kind: "range", message: `--to ${formatLsn(to)} is before --from ${formatLsn(from)}` });
    return { from: formatLsn(from), to: formatLsn(to), timeline, missing };
  }
  const firstSegNo = segmentNumberOf(from, segmentSize);
  const lastSegNo = segmentNumberOf(to > from ? to - 1n : to, segmentSize);
  if (lastSegNo - firstSegNo > MAX_RANGE_SEGMENTS) {
    problems.push({
      kind: "range",
      message: `the range ${formatLsn(from)} to ${formatLsn(to)} is too large to check`,
    });
    return { from: formatLsn(from), to: formatLsn(to), timeline, missing };
  }
  // How far each segment number's best file reaches: a complete file covers the whole segment.
  const reach = new Map<bigint, Lsn>();
  for (const item of onPath) {
    if (item.check === undefined || item.check.problems.length > 0) continue;
    const end = item.entry.partial
      ? (item.check.dataEnd ?? segmentStartLsn(item.segNo, segmentSize))
      : segmentStartLsn(item.segNo + 1n, segmentSize);
    reach.set(item.segNo, maxLsn(end, reach.get(item.segNo) ?? 0n));
  }
  for (let segNo = firstSegNo; segNo <= lastSegNo; segNo++) {
    const needed = minLsn(segmentStartLsn(segNo + 1n, segmentSize), to);
    const end = reach.get(segNo);
    if (end === undefined || end < needed)
      missing.push(walFileName(expectedTimelineOf(path, segNo), segNo, segmentSize));
  }
  if (missing.length > 0) {
    problems.push({
      kind: "range",
      message: `${missing.length} segment(s) needed from ${formatLsn(from)} to ${formatLsn(to)} are missing or incomplete, first ${missing[0]}`,
    });
  }
  return { from: formatLsn(from), to: formatLsn(to), timeline, missing };
}

/** The readable form of a report (what `pgwal verify` prints without --json). */
export function formatVerifyReport(report: VerifyReport): string {
  const lines: string[] = [];
  lines.push(`archive ${report.directory}: ${report.ok ? "OK" : `${report.problems.length} problem(s)`}`);
  lines.push(
    `  ${report.filesChecked} segment file(s) checked, segment size ${report.segmentSize ?? "unknown"}, system identifier ${report.systemIdentifier ?? "unknown"}`,
  );
  for (const timeline of report.timelines) {
    lines.push(
      `  timeline ${timeline.timeline}: ${timeline.segments} segment(s) ${timeline.firstSegment} .. ${timeline.lastSegment}${timeline.hasHistory ? "" : " (no history file)"}`,
    );
  }
  if (report.range !== null) {
    lines.push(
      `  range ${report.range.from} .. ${report.range.to} on timeline ${report.range.timeline}: ${report.range.missing.length === 0 ? "complete" : `${report.range.missing.length} segment(s) missing`}`,
    );
  }
  for (const problem of report.problems)
    lines.push(`  error: ${problem.file ? `${problem.file}: ` : ""}${problem.message}`);
  for (const note of report.notes) lines.push(`  note: ${note}`);
  return `${lines.join("\n")}\n`;
}

/** The JSON form (bigints are already text in the report). */
export function verifyReportJson(report: VerifyReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}
