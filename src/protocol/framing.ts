import { ProtocolError } from "../errors.js";
import type { MessageLimits } from "./message-limits.js";
import { backendMessageName } from "./message-types.js";

/**
 * Largest message accepted by default (the length field, which counts itself). A DataRow may carry
 * a whole timeline history file, so the bound is generous; XLogData stays around 128 KiB.
 */
export const DEFAULT_MAX_MESSAGE_LENGTH = 1024 * 1024 * 1024 + 64 * 1024;

/**
 * A message that straddles chunks is carried as a view (not copied) only up to this size; larger
 * ones are assembled into their own buffer, so a huge message never pins the reader's memory.
 */
export const DEFAULT_MAX_CARRY_BYTES = 1024 * 1024;

/** Type byte plus Int32 length. */
const HEADER_LENGTH = 5;

/**
 * `fromCarry` is true when the message began in an earlier chunk (bytes the framer carried over),
 * so a caller that owns chunks knows which chunk a body view starts in.
 */
export type MessageHandler = (type: number, body: Buffer, fromCarry: boolean) => void;

/**
 * Splits the backend byte stream into messages, handing bodies on as views wherever possible.
 *
 * A message wholly inside a chunk is a subarray of it. A message that straddles chunks is
 * "carried": the framer keeps a view of its first part, and when the next chunk lies right after
 * it in the same memory (a reader filling one buffer in order), the whole message is again a view
 * of that memory — no copy. Only when the next chunk is elsewhere, or the message is larger than
 * `maxCarryBytes`, is the message assembled, once, into a buffer sized from its header.
 */
export class MessageFramer {
  private readonly maxMessageLength: number;
  private readonly maxCarryBytes: number;
  /** Unconsumed bytes of earlier chunks (a header fragment or the start of a message): a view. */
  private carry: Buffer | undefined;
  /** Header bytes gathered from non-adjacent chunks. */
  private readonly header = Buffer.alloc(HEADER_LENGTH);
  private headerFilled = 0;
  /** Body being assembled by copying, once its header is known. */
  private body: Buffer | undefined;
  private bodyFilled = 0;
  private bodyType = 0;
  private failed = false;

  constructor(
    maxMessageLength: number = DEFAULT_MAX_MESSAGE_LENGTH,
    maxCarryBytes = DEFAULT_MAX_CARRY_BYTES,
    /** Memory for an assembled body (a reader may hand out reusable buffers); a fresh one by default. */
    private readonly allocateBody: (size: number) => Buffer = Buffer.allocUnsafe,
    /** Per-type limits checked on each header before its body is read (e.g. ConnectionMessageLimits). */
    private readonly limits?: MessageLimits,
  ) {
    // A programming error, not peer input: hence RangeError rather than ProtocolError.
    if (!Number.isSafeInteger(maxMessageLength) || maxMessageLength < 4 || maxMessageLength > 0x7fff_ffff) {
      throw new RangeError(`maxMessageLength must be an integer from 4 to 2^31-1, got ${maxMessageLength}`);
    }
    this.maxMessageLength = maxMessageLength;
    this.maxCarryBytes = maxCarryBytes;
  }

  /** Bytes held for an incomplete message (header fragment or partial body). */
  get pendingBytes(): number {
    if (this.carry !== undefined) return this.carry.length;
    return this.body === undefined ? this.headerFilled : HEADER_LENGTH + this.bodyFilled;
  }

  /** Bytes of earlier chunks the framer still references (they must stay unchanged). */
  get carriedBytes(): number {
    return this.carry?.length ?? 0;
  }

  /**
   * Calls `onMessage` once per complete message, in order. `body` excludes the 5-byte header.
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
    const carry = this.carry;
    if (carry !== undefined) {
      this.carry = undefined;
      if (carry.buffer === chunk.buffer && carry.byteOffset + carry.length === chunk.byteOffset) {
        // The next chunk continues the same memory: parse across both without copying.
        const joined = Buffer.from(chunk.buffer, carry.byteOffset, carry.length + chunk.length);
        this.parse(joined, carry.length, onMessage);
        return;
      }
      this.startAssembly(carry);
    }
    let pos = 0;
    if (this.headerFilled > 0 || this.body !== undefined) pos = this.continueAssembly(chunk, onMessage);
    if (pos < chunk.length) this.parse(pos === 0 ? chunk : chunk.subarray(pos), 0, onMessage);
  }

  /** Emits every complete message of `data`; keeps (or starts assembling) an incomplete tail. */
  private parse(data: Buffer, carriedLength: number, onMessage: MessageHandler): void {
    const end = data.length;
    let pos = 0;
    while (end - pos >= HEADER_LENGTH) {
      const type = data[pos]!;
      const length = data.readInt32BE(pos + 1);
      this.checkLength(type, length);
      const next = pos + 1 + length;
      if (next > end) {
        if (length + 1 > this.maxCarryBytes) {
          this.startBody(type, length);
          this.fillBody(data, pos + HEADER_LENGTH);
        } else {
          this.carry = data.subarray(pos);
        }
        return;
      }
      const body = data.subarray(pos + HEADER_LENGTH, next);
      this.limits?.observe(type, body);
      onMessage(type, body, pos < carriedLength);
      pos = next;
    }
    if (pos < end) this.carry = data.subarray(pos);
  }

  /** The carried bytes cannot be joined with the next chunk: copy them into the assembly state. */
  private startAssembly(carry: Buffer): void {
    const headerPart = Math.min(HEADER_LENGTH, carry.length);
    carry.copy(this.header, 0, 0, headerPart);
    this.headerFilled = headerPart;
    if (headerPart < HEADER_LENGTH) return;
    const type = this.header[0]!;
    const length = this.header.readInt32BE(1);
    this.headerFilled = 0;
    this.startBody(type, length);
    this.fillBody(carry, HEADER_LENGTH);
  }

  /** Feeds the start of `chunk` to the message being assembled; returns where it stopped. */
  private continueAssembly(chunk: Buffer, onMessage: MessageHandler): number {
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
    this.limits?.observe(this.bodyType, body);
    onMessage(this.bodyType, body, false);
    return pos;
  }

  private startBody(type: number, length: number): void {
    this.bodyType = type;
    this.body = this.allocateBody(length - 4);
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
    this.limits?.check(type, length);
  }
}
