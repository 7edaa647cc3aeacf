/**
 * Reconnect delays: exponential from `initialMs` up to `maxMs`, with ±20 % jitter so that many
 * receivers cut off by the same outage do not reconnect in lockstep.
 */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly initialMs: number,
    private readonly maxMs: number,
    private readonly random: () => number = Math.random,
  ) {}

  get attempts(): number {
    return this.attempt;
  }

  next(): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** this.attempt);
    this.attempt++;
    const jitter = 1 + (this.random() * 2 - 1) * 0.2;
    return Math.round(Math.min(this.maxMs, base * jitter));
  }

  /** After a connection that streamed data: start again from the short delay. */
  reset(): void {
    this.attempt = 0;
  }
}
