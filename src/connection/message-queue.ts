import { Backend } from "../protocol/message-types.js";
import type { RingChunk } from "./read-ring-chunk.js";

/**
 * Backend messages waiting for their consumer, with the backpressure hook the socket needs.
 *
 * Messages are kept in two parallel arrays (type byte, body view) so that queuing costs no object
 * per message. A consumer either awaits one message at a time (startup, queries) or takes every
 * CopyData at the head at once (streaming), which is what lets the receiver batch its writes.
 * Once the transport has failed, queued messages are still delivered first: an ErrorResponse
 * that explains why the server hung up must not be lost behind the socket's "closed" event.
 *
 * Bodies may be views into a reused read ring: what a consumer was handed stays valid until its
 * next call to `next` or `takeCopyData`, which gives the memory back (`onReturn`).
 */
export class MessageQueue {
  private types: number[] = [];
  private bodies: Buffer[] = [];
  /** The ring chunk each body is a view of (undefined for bodies in their own memory). */
  private owners: (RingChunk | undefined)[] = [];
  /** Owners of the bodies handed to the consumer by its last call. */
  private lent: (RingChunk | undefined)[] = [];
  private queuedBytes = 0;
  private failure: Error | undefined;
  private interrupted = false;
  private wake: (() => void) | undefined;

  /** Called when the queue crosses `highWaterBytes` (pause) and when a consumer drains it (resume). */
  constructor(
    private readonly highWaterBytes: number,
    private readonly onPressure: (paused: boolean) => void,
    private readonly onReturn: () => void = () => {},
  ) {}

  private pausedByUs = false;

  get bytes(): number {
    return this.queuedBytes;
  }

  push(type: number, body: Buffer, owner?: RingChunk): void {
    this.types.push(type);
    this.bodies.push(body);
    this.owners.push(owner);
    if (owner) owner.outstanding++;
    this.queuedBytes += body.length;
    if (!this.pausedByUs && this.queuedBytes >= this.highWaterBytes) {
      this.pausedByUs = true;
      this.onPressure(true);
    }
    this.notify();
  }

  /** The transport is gone: consumers get `error` once the queued messages are consumed. */
  fail(error: Error): void {
    if (this.failure === undefined) this.failure = error;
    this.notify();
  }

  /** Makes a pending (or the next) `takeCopyData` return an empty batch at once. */
  interrupt(): void {
    this.interrupted = true;
    this.notify();
  }

  get failed(): Error | undefined {
    return this.failure;
  }

  /** Next message of any type. */
  async next(): Promise<{ type: number; body: Buffer }> {
    this.returnLent();
    await this.waitForMessages();
    const type = this.types.shift()!;
    const body = this.bodies.shift()!;
    this.lent = [this.owners.shift()];
    this.consumed(body.length);
    return { type, body };
  }

  /**
   * Every CopyData body at the head of the queue, waiting until at least one message is queued.
   * Returns an empty array when the head is another message type (the caller then uses `next`)
   * or when `interrupt` was called.
   */
  async takeCopyData(): Promise<Buffer[]> {
    this.returnLent();
    await this.waitForMessages(true);
    if (this.interrupted) {
      this.interrupted = false;
      return [];
    }
    const types = this.types;
    let count = 0;
    while (count < types.length && types[count] === Backend.CopyData) count++;
    if (count === 0) return [];
    let taken: Buffer[];
    if (count === types.length) {
      taken = this.bodies;
      this.lent = this.owners;
      this.types = [];
      this.bodies = [];
      this.owners = [];
    } else {
      taken = this.bodies.splice(0, count);
      this.lent = this.owners.splice(0, count);
      types.splice(0, count);
    }
    let bytes = 0;
    for (const body of taken) bytes += body.length;
    this.consumed(bytes);
    return taken;
  }

  /** The consumer is done with what it was handed last: its ring memory may be reused. */
  private returnLent(): void {
    const lent = this.lent;
    if (lent.length === 0) return;
    this.lent = [];
    let fromRing = false;
    for (const owner of lent) {
      if (owner) {
        owner.outstanding--;
        fromRing = true;
      }
    }
    if (fromRing) this.onReturn();
  }

  private consumed(bytes: number): void {
    this.queuedBytes -= bytes;
    if (this.pausedByUs && this.queuedBytes < this.highWaterBytes / 2) {
      this.pausedByUs = false;
      this.onPressure(false);
    }
  }

  private async waitForMessages(interruptible = false): Promise<void> {
    while (this.types.length === 0 && !(interruptible && this.interrupted)) {
      if (this.failure !== undefined) throw this.failure;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
    }
  }

  private notify(): void {
    const wake = this.wake;
    if (wake !== undefined) {
      this.wake = undefined;
      wake();
    }
  }
}
