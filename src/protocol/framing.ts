import { ProtocolError } from "../errors.js";
import { backendMessageName } from "./message-types.js";

/**
 * Largest message accepted by default (the length field, which counts itself). A DataRow may carry
 * a whole timeline history file, so the bound is generous; XLogData stays around 128 KiB.
 */
export const DEFAULT_MAX_MESSAGE_LENGTH = 1024 * 1024 * 1024 + 64 * 1024;

/** Type byte plus Int32 length. */
const HEADER_LENGTH = 5;

export type MessageHandler = (type: number, body: Buffer) => void;

/**
 * Splits the backend byte stream into messages. The hot path (a message wholly inside one chunk,
 * which is nearly every XLogData) hands out a subarray of the chunk: no copy, no allocation
 * beyond the view. Only a message that straddles chunks is copied, once, into a buffer sized
 * from its header.
 */
export class MessageFramer {
  private readonly maxMessageLength: number;
  /** Holds a header that arrived in pieces; reused for the framer's lifetime. */
  private readonly header = Buffer.alloc(HEADER_LENGTH);
  private headerFilled = 0;
  /** Body being assembled across chunks, once its header is known. */
  private body: Buffer | undefined;
  private bodyFilled = 0;
  private bodyType = 0;
  private failed = false;

  constructor(maxMessageLength: number = DEFAULT_MAX_MESSAGE_LENGTH) {
    // A programming error, not peer input: hence RangeError rather than ProtocolError.
    if (!Number.isSafeInteger(maxMessageLength) || maxMessageLength < 4 || maxMessageLength > 0x7fff_ffff) {
      throw new RangeError(`maxMessageLength must be an integer from 4 to 2^31-1, got ${maxMessageLength}`);
    }
    this.maxMessageLength = maxMessageLength;
  }

  /** Bytes held for an incomplete message (header fragment or partial body). */
  get pendingBytes(): number {
    return this.body === undefined ? this.headerFilled : HEADER_LENGTH + this.bodyFilled;
  }

  /**
   * Calls `onMessage` once per complete message, in order. `body` excludes the 5-byte header and
   * is a view into `chunk` when the message lies wholly inside it (valid as long as `chunk` is).
   * Throws ProtocolError for a length below 4 or above the maximum. After any throw (including
   * one from `onMessage`, which leaves the rest of the chunk unread) the framer is unusable.
   */
  push(chunk: Buffer, onMessage: MessageHandler): void {
    if (this.failed) throw new ProtocolError("message stream is unusable after an earlier error");
    try {
      this.consume(chunk, onMessage);
    } catch (error) {
      this.failed = true;
      throw error;
    }
  }

  private consume(chunk: Buffer, onMessage: MessageHandler): void {
    const end = chunk.length;
    let pos = 0;
    if (this.headerFilled > 0 || this.body !== undefined) {
      pos = this.continuePending(chunk, onMessage);
    }
    while (end - pos >= HEADER_LENGTH) {
      const type = chunk[pos]!;
      const length = chunk.readInt32BE(pos + 1);
      this.checkLength(type, length);
      const next = pos + 1 + length;
      if (next > end) {
        this.startBody(type, length);
        this.fillBody(chunk, pos + HEADER_LENGTH);
        return;
      }
      onMessage(type, chunk.subarray(pos + HEADER_LENGTH, next));
      pos = next;
    }
    if (pos < end) {
      chunk.copy(this.header, 0, pos, end);
      this.headerFilled = end - pos;
    }
  }

  /** Feeds the start of `chunk` to the message left incomplete by earlier chunks; returns where it stopped. */
  private continuePending(chunk: Buffer, onMessage: MessageHandler): number {
    let pos = 0;
    if (this.body === undefined) {
      const take = Math.min(HEADER_LENGTH - this.headerFilled, chunk.length);
      chunk.copy(this.header, this.headerFilled, 0, take);
      this.headerFilled += take;
      pos = take;
      if (this.headerFilled < HEADER_LENGTH) return pos;
      const type = this.header[0]!;
      const length = this.header.readInt32BE(1);
      this.checkLength(type, length);
      this.headerFilled = 0;
      this.startBody(type, length);
    }
    pos = this.fillBody(chunk, pos);
    const body = this.body!;
    if (this.bodyFilled < body.length) return pos;
    // Reset before the callback so that state is consistent whatever the handler does.
    this.body = undefined;
    this.bodyFilled = 0;
    onMessage(this.bodyType, body);
    return pos;
  }

  private startBody(type: number, length: number): void {
    this.bodyType = type;
    this.body = Buffer.allocUnsafe(length - 4);
    this.bodyFilled = 0;
  }

  /** Copies what `chunk` holds of the pending body from `pos`; returns the position after it. */
  private fillBody(chunk: Buffer, pos: number): number {
    const body = this.body!;
    const take = Math.min(body.length - this.bodyFilled, chunk.length - pos);
    chunk.copy(body, this.bodyFilled, pos, pos + take);
    this.bodyFilled += take;
    return pos + take;
  }

  private checkLength(type: number, length: number): void {
    if (length < 4 || length > this.maxMessageLength) {
      throw new ProtocolError(
        `invalid length ${length} in ${backendMessageName(type)} message header` +
          (length < 4 ? " (less than 4)" : ` (limit ${this.maxMessageLength})`),
      );
    }
  }
}
