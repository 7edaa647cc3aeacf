/**
 * Timeline histories read from an archive, and the recovery path they describe: which timeline
 * holds which range of segments when replaying up to a target timeline.
 */
import { type Lsn, segmentNumberOf } from "../lsn.js";
import { parseTimelineHistory, type TimelineHistoryEntry } from "../protocol/replication.js";
import { historyFileName } from "../wal/names.js";
import { type ArchiveSource, archiveSourceOf } from "./archive-source.js";

/** A history file larger than this is not one (each line names one ancestor timeline). */
const MAX_HISTORY_FILE = 64 * 1024 * 1024;

/**
 * Reads and parses TTTTTTTT.history in the archive; undefined when it does not exist. In a
 * directory only a regular file is read (NotRegularFileError otherwise).
 */
export async function readTimelineHistory(
  archive: string | ArchiveSource,
  timeline: number,
): Promise<TimelineHistoryEntry[] | undefined> {
  const content = await archiveSourceOf(archive).readSmallFile(historyFileName(timeline), MAX_HISTORY_FILE);
  if (content === undefined) return undefined;
  const entries = parseTimelineHistory(content.toString("utf8"));
  const wrong = entries.find((entry) => entry.timeline >= timeline);
  if (wrong !== undefined) {
    throw new RangeError(`${historyFileName(timeline)} names timeline ${wrong.timeline} as an ancestor`);
  }
  return entries;
}

/** One step of a recovery path: `timeline` holds segments firstSegNo..lastSegNo (inclusive). */
export interface TimelineSpan {
  timeline: number;
  begin: Lsn;
  /** Switch point away from this timeline; undefined for the target timeline. */
  end?: Lsn;
  firstSegNo: bigint;
  /** undefined: no end (the target timeline). */
  lastSegNo?: bigint;
}

/**
 * The spans leading to `target`, oldest first. The segment holding a switch point belongs to both
 * sides: the new timeline's copy is preferred, the old one's (usually a .partial) is as good up to
 * the switch point.
 */
export function recoveryPath(
  target: number,
  history: readonly TimelineHistoryEntry[],
  segmentSize: number,
): TimelineSpan[] {
  const spans: TimelineSpan[] = [];
  let begin: Lsn = 0n;
  for (const entry of history) {
    const end = entry.switchpoint;
    spans.push({
      timeline: entry.timeline,
      begin,
      end,
      firstSegNo: segmentNumberOf(begin, segmentSize),
      lastSegNo: end > 0n ? segmentNumberOf(end - 1n, segmentSize) : 0n,
    });
    begin = end;
  }
  spans.push({ timeline: target, begin, firstSegNo: segmentNumberOf(begin, segmentSize) });
  return spans;
}

/** Whether segment `segNo` on `timeline` lies inside the path's span for that timeline. */
export function isOnPath(path: readonly TimelineSpan[], timeline: number, segNo: bigint): boolean {
  return path.some(
    (span) =>
      span.timeline === timeline &&
      segNo >= span.firstSegNo &&
      (span.lastSegNo === undefined || segNo <= span.lastSegNo),
  );
}

/** The timeline recovery reads segment `segNo` from first (the newest span that covers it). */
export function expectedTimelineOf(path: readonly TimelineSpan[], segNo: bigint): number {
  for (let i = path.length - 1; i >= 0; i--) if (segNo >= path[i]!.firstSegNo) return path[i]!.timeline;
  return path[0]!.timeline;
}
