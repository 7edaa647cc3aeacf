/**
 * `pgwal verify --target-…` as a library call: refreshes the archive's time map, follows the
 * newest timeline's history, and decides whether recovery to the target is possible (see
 * recovery-target.ts for the rules).
 */
import type { Lsn } from "../lsn.js";
import { listArchiveDirectory } from "./archive-listing.js";
import { decideRecoveryTarget, type RecoveryTarget, type TargetDecision } from "./recovery-target.js";
import { archiveTimeMap, type TimeMapOptions } from "./time-map.js";
import { readTimelineHistory, recoveryPath } from "./timeline-histories.js";

export interface TargetCheck extends TargetDecision {
  /** Segment files the time map had to read (0 when its index was current). */
  filesRead: number;
  indexFile: string;
  /** Why the index could not be saved (the answer is still right), or null. */
  indexSaveError: string | null;
}

export async function checkRecoveryTarget(
  directory: string,
  target: RecoveryTarget,
  options: TimeMapOptions & { fromBackup?: Lsn } = {},
): Promise<TargetCheck> {
  const { map, indexFile, filesRead, saveError } = await archiveTimeMap(directory, options);
  const listing = await listArchiveDirectory(directory);
  const newest = Math.max(
    1,
    ...listing.segments.map((entry) => entry.timeline),
    ...listing.histories.map((entry) => entry.timeline),
  );
  const history = (await readTimelineHistory(directory, newest)) ?? [];
  const path = recoveryPath(newest, history, map.segmentSize ?? 16 * 1024 * 1024);
  const decision = decideRecoveryTarget(map, { target, fromBackup: options.fromBackup, path });
  return { ...decision, filesRead, indexFile, indexSaveError: saveError };
}

export function formatTargetCheck(check: TargetCheck): string {
  const lines = [`${check.reachable ? "reachable" : "NOT reachable"}: ${check.message}`];
  if (check.historyFile !== null) lines.push(`  timeline history: ${check.historyFile}`);
  if (check.segments.length > 0)
    lines.push(
      `  segments${check.reachable ? " needed" : " read before stopping"}: ${check.segments.join(" ")}`,
    );
  return `${lines.join("\n")}\n`;
}
