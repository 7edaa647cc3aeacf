import { INVALID_LSN, type Lsn } from "../lsn.js";
import { pgTimestampNow, standbyStatusUpdateMessage } from "../protocol/replication.js";

/**
 * What a standby status update says and when one is due.
 *
 * write = the end of WAL handed to the OS; flush = the end of WAL known durable. Like
 * pg_receivewal, the flush position is only reported when a slot or --synchronous is used;
 * otherwise it is InvalidXLogRecPtr (0), so the server never waits on us. `flushCap` lets
 * a caller hold the reported flush back further (e.g. until a hook has shipped a segment).
 */
export class FeedbackPolicy {
  private lastSentAt = Number.NEGATIVE_INFINITY;

  constructor(
    /** Report the flush position (slot or --synchronous). */
    readonly reportFlush: boolean,
    /** --status-interval in ms; 0 disables periodic updates. */
    readonly intervalMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** True when the periodic update is due (always true before the first one). */
  isDue(): boolean {
    if (this.lastSentAt === Number.NEGATIVE_INFINITY) return true;
    return this.intervalMs > 0 && this.now() - this.lastSentAt >= this.intervalMs;
  }

  /** Milliseconds until the next periodic update, or undefined when periodic updates are off. */
  msUntilDue(): number | undefined {
    if (this.intervalMs <= 0) return undefined;
    return Math.max(0, this.lastSentAt + this.intervalMs - this.now());
  }

  /** Builds the CopyData message and records the time it was sent. */
  message(write: Lsn, flush: Lsn, flushCap?: Lsn, replyRequested = false): Buffer {
    this.lastSentAt = this.now();
    let reported = this.reportFlush ? flush : INVALID_LSN;
    if (flushCap !== undefined && reported > flushCap) reported = flushCap;
    return standbyStatusUpdateMessage({
      write,
      flush: reported,
      apply: INVALID_LSN,
      clientTime: pgTimestampNow(),
      replyRequested,
    });
  }
}
