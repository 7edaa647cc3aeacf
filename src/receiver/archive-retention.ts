/**
 * `pgwal receive --retention DURATION`: after each completed segment, removes the segments that
 * completed more than DURATION ago (the rules of `pgwal cleanup --keep`). Runs off the streaming
 * path, one run at a time; a run asked for while one is going happens once more after it.
 *
 * A segment whose `--on-segment` hook has not succeeded yet is never removed (the hook would then
 * fail forever): `holdPosition` bounds what may go. A failed removal is logged and tried again after
 * the next segment; it never stops streaming (nothing is lost by keeping a file).
 */
import { listArchiveDirectory } from "../archive/archive-listing.js";
import { planCleanup, removeArchiveFiles } from "../archive/cleanup.js";
import type { Lsn } from "../lsn.js";
import { walFileName } from "../wal/names.js";
import type { ReceiverLogger } from "./logger.js";

export interface ArchiveRetentionOptions {
  directory: string;
  keepMs: number;
  logger: ReceiverLogger;
  /** WAL before this position may go (hooks done); absent = no bound. */
  holdPosition?: () => Lsn;
  now?: () => number;
}

export class ArchiveRetention {
  private running: Promise<void> | undefined;
  private again = false;
  private segmentSize = 0;

  constructor(private readonly options: ArchiveRetentionOptions) {}

  /** A segment was completed on a server with this segment size: time to look again. */
  segmentCompleted(segmentSize: number): void {
    this.segmentSize = segmentSize;
    if (this.running !== undefined) {
      this.again = true;
      return;
    }
    this.running = this.runUntilCaughtUp().finally(() => {
      this.running = undefined;
    });
  }

  /** Waits for the run in progress. */
  async stop(): Promise<void> {
    this.again = false;
    await this.running;
  }

  private async runUntilCaughtUp(): Promise<void> {
    do {
      this.again = false;
      await this.runOnce().catch((error: unknown) =>
        this.options.logger.warn(
          { err: error },
          `retention: ${error instanceof Error ? error.message : String(error)}; trying again after the next segment`,
        ),
      );
    } while (this.again);
  }

  private async runOnce(): Promise<void> {
    const { directory, keepMs, holdPosition } = this.options;
    const held = holdPosition?.();
    const before =
      held === undefined ? undefined : walFileName(1, held / BigInt(this.segmentSize), this.segmentSize);
    const plan = planCleanup(await listArchiveDirectory(directory), {
      keepMs,
      before,
      now: (this.options.now ?? Date.now)(),
    });
    if (plan.remove.length === 0) return;
    await removeArchiveFiles(directory, plan.remove);
    this.options.logger.info(
      { removed: plan.remove.length, oldestKept: plan.oldestKept },
      `retention removed ${plan.remove.length} file(s); oldest segment kept ${plan.oldestKept}`,
    );
  }
}
