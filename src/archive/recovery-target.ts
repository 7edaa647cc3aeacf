/**
 * Whether PostgreSQL can recover to a target from an archive, decided from its time map alone,
 * and which segment files that recovery reads.
 *
 * The rules, from xlogrecovery.c (PostgreSQL 14 and later: recovery that ends before its target
 * fails with "recovery ended before configured recovery target was reached"):
 * - recovery_target_time: recoveryStopsBefore stops before the first transaction end (commit,
 *   abort, commit/abort prepared — no other record counts) whose time is after the target
 *   (recovery_target_inclusive = on, the default) or at/after it (off). The target is reached
 *   only when replay READS such a record: the archive must hold, without a gap from the start,
 *   WAL up to the end of the first transaction end with a later time. A target at or after the
 *   archive's latest transaction end is not reachable.
 * - recovery_target_name: recoveryStopsAfter stops after the first restore point of that name
 *   replayed; one before the start is never replayed.
 * - recovery_target_lsn: stops after (inclusive) or before the first record starting at or after
 *   the target; the archive must hold WAL past the target.
 * - The stop must come after the backup's consistency point (its XLOG_BACKUP_END record) or
 *   PostgreSQL refuses ("requested recovery stop point is before consistent recovery point").
 *
 * The map keeps, per segment file, the first, last and latest-in-time transaction end, so the
 * stopping segment is exact (the first whose latest end is past the target) while the stopping
 * record is named only when it is the segment's first end. Events belong to the file their record
 * ends in, so the listed files hold the stopping record whole.
 */
import { formatLsn, type Lsn, parseLsn, segmentNumberOf, segmentStartLsn } from "../lsn.js";
import { historyFileName, walFileName } from "../wal/names.js";
import { formatPgTime, type PgTime } from "./pg-time.js";
import type { TimeMap, TimeMapSegment } from "./time-map.js";
import { expectedTimelineOf, isOnPath, type TimelineSpan } from "./timeline-histories.js";

export type RecoveryTarget =
  | { kind: "time"; time: PgTime; inclusive?: boolean }
  | { kind: "name"; name: string }
  | { kind: "lsn"; lsn: Lsn };

export type TargetReason =
  | "empty"
  | "gap"
  | "damaged"
  | "after-last-commit"
  | "beyond-end"
  | "unknown-name"
  | "before-backup-start"
  | "before-consistency";

export interface TargetDecision {
  reachable: boolean;
  /** Why not, when not reachable. */
  reason: TargetReason | null;
  message: string;
  target: string;
  timeline: number | null;
  /** Where replay starts: --from-backup, else the start of the oldest segment. */
  start: string | null;
  /** Segment files recovery reads, oldest first (up to where it stops, or as far as the archive goes). */
  segments: string[];
  /** The newest timeline's history file, which recovery reads first (null on timeline 1). */
  historyFile: string | null;
  /** Where recovery stops: the file, and the record when it is known exactly. */
  stop: { file: string; lsn: string | null; time: string | null } | null;
  /** The missing segment, for reason "gap". */
  missing: string | null;
}

export interface TargetQuery {
  target: RecoveryTarget;
  /** The backup's start LSN (its checkpoint's redo). */
  fromBackup?: Lsn;
  /** recoveryPath() to the newest timeline. */
  path: readonly TimelineSpan[];
}

export function describeTarget(target: RecoveryTarget): string {
  if (target.kind === "time")
    return `time ${formatPgTime(target.time)}${target.inclusive === false ? " (exclusive)" : ""}`;
  if (target.kind === "name") return `restore point ${JSON.stringify(target.name)}`;
  return `LSN ${formatLsn(target.lsn)}`;
}

/** The file recovery reads for each segment on the path: the newest timeline's, complete before partial. */
function filesOnPath(map: TimeMap, path: readonly TimelineSpan[]): Map<bigint, TimeMapSegment> {
  const chosen = new Map<bigint, TimeMapSegment>();
  const rank = (segment: TimeMapSegment, segNo: bigint) =>
    (segment.timeline === expectedTimelineOf(path, segNo) ? 0 : 2) + (segment.partial ? 1 : 0);
  for (const segment of map.segments) {
    const segNo = BigInt(segment.segNo);
    if (!isOnPath(path, segment.timeline, segNo)) continue;
    const current = chosen.get(segNo);
    if (current === undefined || rank(segment, segNo) < rank(current, segNo)) chosen.set(segNo, segment);
  }
  return chosen;
}

interface Stop {
  lsn: Lsn | null;
  time: PgTime | null;
}

/** Where in `segment` recovery to `target` stops, if it does, for replay starting at `start`. */
function stopIn(
  segment: TimeMapSegment,
  target: RecoveryTarget,
  start: Lsn,
  segmentSize: number,
): Stop | undefined {
  if (target.kind === "time") {
    const past = (time: PgTime) => (target.inclusive === false ? time >= target.time : time > target.time);
    const first = segment.firstEnd;
    if (first !== null && parseLsn(first.lsn) >= start && past(first.time))
      return { lsn: parseLsn(first.lsn), time: first.time };
    for (const end of [segment.lastEnd, segment.latestEnd]) {
      if (end !== null && parseLsn(end.lsn) >= start && past(end.time)) return { lsn: null, time: null };
    }
    return undefined;
  }
  if (target.kind === "name") {
    const point = segment.restorePoints.find((p) => p.name === target.name && parseLsn(p.lsn) >= start);
    return point === undefined ? undefined : { lsn: parseLsn(point.lsn), time: point.time };
  }
  const begin = segmentStartLsn(BigInt(segment.segNo), segmentSize);
  const end = segment.walEnd === null ? begin + BigInt(segmentSize) : parseLsn(segment.walEnd);
  return target.lsn >= begin && target.lsn < end ? { lsn: target.lsn, time: null } : undefined;
}

export function decideRecoveryTarget(map: TimeMap, query: TargetQuery): TargetDecision {
  const { target, path } = query;
  const timeline = path.at(-1)?.timeline ?? null;
  const decision: TargetDecision = {
    reachable: false,
    reason: null,
    message: "",
    target: describeTarget(target),
    timeline,
    start: null,
    segments: [],
    historyFile: timeline !== null && timeline > 1 ? historyFileName(timeline) : null,
    stop: null,
    missing: null,
  };
  const no = (reason: TargetReason, message: string): TargetDecision => ({ ...decision, reason, message });
  const segmentSize = map.segmentSize;
  const files = segmentSize === null ? new Map<bigint, TimeMapSegment>() : filesOnPath(map, path);
  if (segmentSize === null || files.size === 0)
    return no("empty", "the archive holds no WAL on this timeline's path");
  const segNos = [...files.keys()].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const start = query.fromBackup ?? segmentStartLsn(segNos[0]!, segmentSize);
  decision.start = formatLsn(start);
  const lastSegNo = segNos.at(-1)!;

  // The backup's start checkpoint (its time) and end record (its consistency point), when in the map.
  const all = map.segments;
  const startCheckpoint =
    query.fromBackup === undefined
      ? undefined
      : all.flatMap((s) => s.checkpoints).find((c) => parseLsn(c.redo) === query.fromBackup);
  const backupEnd =
    query.fromBackup === undefined
      ? undefined
      : all.flatMap((s) => s.backupEnds).find((b) => parseLsn(b.backupStart) === query.fromBackup);
  const consistency = backupEnd === undefined ? start : parseLsn(backupEnd.lsn);

  if (target.kind === "lsn" && target.lsn < start)
    return no(
      "before-backup-start",
      `target LSN ${formatLsn(target.lsn)} is before the start ${formatLsn(start)}`,
    );
  if (target.kind === "time" && startCheckpoint !== undefined && target.time < startCheckpoint.time)
    return no(
      "before-backup-start",
      `target time ${formatPgTime(target.time)} is before the backup's start checkpoint at ${formatPgTime(startCheckpoint.time)}`,
    );
  if (target.kind === "name") {
    const points = all.flatMap((s) => s.restorePoints).filter((p) => p.name === target.name);
    if (points.length === 0)
      return no("unknown-name", `no restore point named ${JSON.stringify(target.name)} in the archive`);
    if (points.every((p) => parseLsn(p.lsn) < start))
      return no(
        "before-backup-start",
        `restore point ${JSON.stringify(target.name)} (${points[0]!.lsn}) is before the start ${formatLsn(start)}`,
      );
  }

  // Replay from the start segment until the stop, a missing or damaged file, or the end of the archive.
  let blocked: { reason: "gap" | "damaged"; message: string; missing: string | null } | undefined;
  let segNo = segmentNumberOf(start, segmentSize);
  for (; segNo <= lastSegNo; segNo++) {
    const segment = files.get(segNo);
    if (segment === undefined) {
      const name = walFileName(expectedTimelineOf(path, segNo), segNo, segmentSize);
      blocked = { reason: "gap", missing: name, message: `segment ${name} is missing from the archive` };
      break;
    }
    decision.segments.push(segment.file);
    const stop = stopIn(segment, target, start, segmentSize);
    if (stop !== undefined) {
      const stopEnd = stop.lsn ?? segmentStartLsn(segNo + 1n, segmentSize);
      decision.stop = {
        file: segment.file,
        lsn: stop.lsn === null ? null : formatLsn(stop.lsn),
        time: stop.time === null ? null : formatPgTime(stop.time),
      };
      if (stopEnd < consistency || (stop.lsn === null && stopEnd <= consistency))
        return no(
          "before-consistency",
          `recovery would stop in ${segment.file}, before the backup is consistent at ${formatLsn(consistency)}`,
        );
      const at = stop.lsn === null ? "" : ` at ${formatLsn(stop.lsn)}`;
      const when = stop.time === null ? "" : ` (${formatPgTime(stop.time)})`;
      return {
        ...decision,
        reachable: true,
        message: `recovery to ${decision.target} is possible: replay from ${formatLsn(start)} on timeline ${timeline} stops in ${segment.file}${at}${when}; ${decision.segments.length} segment file(s) needed`,
      };
    }
    if (segment.problem !== null) {
      blocked = {
        reason: "damaged",
        missing: null,
        message: `${segment.file} cannot be replayed: ${segment.problem}`,
      };
      break;
    }
    if (segment.partial) break; // the WAL of this path ends in its .partial
  }

  const later = segNos.filter((n) => n > segNo).map((n) => files.get(n)!);
  const reachedLater = later.find((segment) => stopIn(segment, target, start, segmentSize) !== undefined);
  if (blocked !== undefined && reachedLater !== undefined)
    return {
      ...no(
        blocked.reason,
        `${blocked.message}: recovery from ${formatLsn(start)} cannot reach ${decision.target} (in ${reachedLater.file})`,
      ),
      missing: blocked.missing,
    };
  const note = blocked === undefined ? "" : ` (and ${blocked.message})`;
  if (target.kind === "name")
    return no(
      "unknown-name",
      `no restore point named ${JSON.stringify(target.name)} after ${formatLsn(start)} on this timeline's path${note}`,
    );
  if (target.kind === "lsn") {
    const end = files.get(lastSegNo)!;
    const endLsn = end.walEnd ?? formatLsn(segmentStartLsn(lastSegNo + 1n, segmentSize));
    return no(
      "beyond-end",
      `target LSN ${formatLsn(target.lsn)} is beyond the end of the archive's WAL (${endLsn})${note}`,
    );
  }
  const latest = latestEnd([...files.values()]);
  return no(
    "after-last-commit",
    latest === undefined
      ? `the archive holds no commit or abort after ${formatLsn(start)}${note}`
      : `target time ${formatPgTime(target.time)} is not before the last commit/abort in the archive (${formatPgTime(latest.time)} at ${latest.lsn}): recovery would end before reaching it${note}`,
  );
}

function latestEnd(segments: readonly TimeMapSegment[]): { time: PgTime; lsn: string } | undefined {
  let latest: { time: PgTime; lsn: string } | undefined;
  for (const segment of segments) {
    const end = segment.latestEnd;
    if (end !== null && (latest === undefined || end.time > latest.time)) latest = end;
  }
  return latest;
}

export interface TimelineTimes {
  timeline: number;
  /** Earliest and latest transaction end (by time) in the timeline's files. */
  firstCommit: string | null;
  lastCommit: string | null;
  restorePoints: { name: string; time: string; lsn: string }[];
}

/** What `status` shows: per timeline, the time range of its transaction ends and its restore points. */
export function timelineTimes(map: TimeMap): TimelineTimes[] {
  const byTimeline = new Map<number, TimeMapSegment[]>();
  for (const segment of map.segments)
    byTimeline.set(segment.timeline, [...(byTimeline.get(segment.timeline) ?? []), segment]);
  return [...byTimeline]
    .sort(([a], [b]) => a - b)
    .map(([timeline, segments]) => {
      let first: PgTime | undefined;
      for (const segment of segments) {
        for (const end of [segment.firstEnd, segment.lastEnd, segment.latestEnd])
          if (end !== null && (first === undefined || end.time < first)) first = end.time;
      }
      const last = latestEnd(segments);
      return {
        timeline,
        firstCommit: first === undefined ? null : formatPgTime(first),
        lastCommit: last === undefined ? null : formatPgTime(last.time),
        restorePoints: segments.flatMap((s) =>
          s.restorePoints.map((p) => ({ name: p.name, time: formatPgTime(p.time), lsn: p.lsn })),
        ),
      };
    });
}
