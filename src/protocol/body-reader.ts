import { ProtocolError } from "../errors.js";

/**
 * A cursor over one message body that checks every read against the remaining length first, so
 * a short or garbled message becomes a ProtocolError naming the message instead of a RangeError
 * from Buffer. Values returned by `bytes`/`rest` are views into the body (no copy).
 */
export class BodyReader {
  private offset = 0;

  constructor(
    private readonly body: Buffer,
    /** Message name used in error texts, e.g. "DataRow". */
    private readonly what: string,
  ) {}

  get remaining(): number {
    return this.body.length - this.offset;
  }

  fail(problem: string): ProtocolError {
    return new ProtocolError(`malformed ${this.what} message: ${problem}`);
  }

  private need(bytes: number, field: string): number {
    const at = this.offset;
    if (bytes > this.body.length - at) {
      throw this.fail(
        `truncated at ${field} (needs ${bytes} bytes at offset ${at}, body has ${this.body.length})`,
      );
    }
    this.offset = at + bytes;
    return at;
  }

  uint8(field: string): number {
    return this.body[this.need(1, field)]!;
  }

  int16(field: string): number {
    return this.body.readInt16BE(this.need(2, field));
  }

  int32(field: string): number {
    return this.body.readInt32BE(this.need(4, field));
  }

  uint32(field: string): number {
    return this.body.readUInt32BE(this.need(4, field));
  }

  uint64(field: string): bigint {
    return this.body.readBigUInt64BE(this.need(8, field));
  }

  int64(field: string): bigint {
    return this.body.readBigInt64BE(this.need(8, field));
  }

  /** A NUL-terminated UTF-8 string; the terminator is consumed but not returned. */
  cstring(field: string): string {
    const start = this.offset;
    const nul = this.body.indexOf(0, start);
    if (nul < 0) throw this.fail(`${field} is not NUL-terminated`);
    this.offset = nul + 1;
    return this.body.toString("utf8", start, nul);
  }

  /** True (and consumed) when the next byte is the NUL that ends a list of strings or fields. */
  atListEnd(field: string): boolean {
    const at = this.need(1, field);
    if (this.body[at] === 0) return true;
    this.offset = at;
    return false;
  }

  bytes(length: number, field: string): Buffer {
    const at = this.need(length, field);
    return this.body.subarray(at, at + length);
  }

  rest(): Buffer {
    const at = this.offset;
    this.offset = this.body.length;
    return this.body.subarray(at);
  }

  /** Fails when bytes are left over: a length that disagrees with the content is not trusted. */
  end(): void {
    if (this.offset !== this.body.length) {
      throw this.fail(`${this.body.length - this.offset} unexpected trailing bytes`);
    }
  }
}
