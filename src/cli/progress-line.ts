/**
 * The catch-up line on a terminal: how far received WAL is behind the server's end position,
 * the rate, and the time left, redrawn in place (\r) at most once a second. Log lines clear it
 * first so that they never end up glued to it.
 */
import { formatLsn, type Lsn } from "../lsn.js";
import type { ReceiverLogger } from "../receiver/logger.js";

export interface ProgressSample {
  received: Lsn;
  serverEnd: Lsn;
  timeline: number;
}

/** Bytes per second as "12.3 MB/s". */
function formatRate(bytesPerSecond: number): string {
  return `${(bytesPerSecond / 1_000_000).toFixed(1)} MB/s`;
}

/** Seconds as "1:02:03" or "2:03". */
export function formatDuration(seconds: number): string {
  const total = Math.max(0, Math.round(seconds));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = total % 60;
  const mm = h > 0 ? String(m).padStart(2, "0") : String(m);
  return `${h > 0 ? `${h}:` : ""}${mm}:${String(s).padStart(2, "0")}`;
}

/** The text of the line for one sample and the current rate (bytes/s). */
export function formatProgress(sample: ProgressSample, bytesPerSecond: number): string {
  const behind = sample.serverEnd > sample.received ? sample.serverEnd - sample.received : 0n;
  const base = `received ${formatLsn(sample.received)} of ${formatLsn(sample.serverEnd)} (timeline ${sample.timeline})`;
  if (behind === 0n) return `${base}, caught up, ${formatRate(bytesPerSecond)}`;
  const behindMb = Number(behind) / 1_000_000;
  const left = bytesPerSecond > 0 ? formatDuration(Number(behind) / bytesPerSecond) : "--:--";
  return `${base}, ${behindMb.toFixed(1)} MB behind, ${formatRate(bytesPerSecond)}, ${left} left`;
}

export interface ProgressLineOptions {
  write: (text: string) => void;
  sample: () => ProgressSample | undefined;
  intervalMs?: number;
  now?: () => number;
}

export class ProgressLine {
  private timer: NodeJS.Timeout | undefined;
  private shown = false;
  private last: { at: number; received: Lsn } | undefined;
  private rate = 0;
  private readonly now: () => number;

  constructor(private readonly options: ProgressLineOptions) {
    this.now = options.now ?? Date.now;
  }

  start(): void {
    if (this.timer !== undefined) return;
    this.timer = setInterval(() => this.draw(), this.options.intervalMs ?? 1000);
    this.timer.unref();
  }

  /** Redraws the line now (the timer calls this). */
  draw(): void {
    const sample = this.options.sample();
    if (sample === undefined || sample.serverEnd === 0n) return;
    const at = this.now();
    if (this.last !== undefined && at > this.last.at && sample.received >= this.last.received) {
      const instant = (Number(sample.received - this.last.received) * 1000) / (at - this.last.at);
      // Smoothed, so one slow second does not make the estimate jump.
      this.rate = this.rate === 0 ? instant : this.rate * 0.7 + instant * 0.3;
    }
    this.last = { at, received: sample.received };
    this.options.write(`\r${formatProgress(sample, this.rate)}\u001b[K`);
    this.shown = true;
  }

  /** Erases the line (before a log line, and at the end). */
  clear(): void {
    if (!this.shown) return;
    this.options.write("\r\u001b[K");
    this.shown = false;
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    this.clear();
  }

  /** A logger that erases the line before each message. */
  wrapLogger(logger: ReceiverLogger): ReceiverLogger {
    const clearing =
      (level: keyof ReceiverLogger) =>
      (fields: Record<string, unknown>, message: string): void => {
        this.clear();
        logger[level](fields, message);
      };
    return {
      debug: clearing("debug"),
      info: clearing("info"),
      warn: clearing("warn"),
      error: clearing("error"),
    };
  }
}
