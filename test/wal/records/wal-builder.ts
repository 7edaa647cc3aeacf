/**
 * Builds WAL byte streams by hand for the record reader's tests: records with xl_prev and CRC-32C
 * filled in, laid out on 8 KiB pages with long/short page headers, continuation flags and
 * xlp_rem_len, MAXALIGN gaps, switch records with their zero tail. The CRC here is a bitwise
 * reference implementation, independent of the code under test.
 */
import { formatLsn } from "../../../src/lsn.js";

export const PAGE = 8192;
export const MAGIC_15 = 0xd110;
export const SYSTEM_ID = 7_300_000_000_000_000_001n;

export function referenceCrc32c(bytes: Uint8Array, crc = 0xffffffff): number {
  for (const byte of bytes) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
  }
  return crc >>> 0;
}

/** The block-reference part of a record with only main data (XLR_BLOCK_ID_DATA_SHORT/LONG). */
export function mainDataBody(main: Buffer, prefix: Buffer = Buffer.alloc(0)): Buffer {
  const lengthHeader =
    main.length < 256
      ? Buffer.from([255, main.length])
      : Buffer.concat([Buffer.from([254]), u32(main.length)]);
  return Buffer.concat([prefix, lengthHeader, main]);
}

export function u16(value: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(value);
  return b;
}

export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

export function i64(value: bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigInt64LE(value);
  return b;
}

export interface RecordSpec {
  rmid: number;
  info: number;
  xid?: number;
  /** Bytes after the 24-byte header (block headers, block data, main data). */
  body: Buffer;
}

/** A whole record: header (with xl_prev and CRC) + body. */
export function encodeRecord(spec: RecordSpec, prev: bigint): Buffer {
  const record = Buffer.alloc(24 + spec.body.length);
  record.writeUInt32LE(record.length, 0);
  record.writeUInt32LE(spec.xid ?? 0, 4);
  record.writeBigUInt64LE(prev, 8);
  record[16] = spec.info;
  record[17] = spec.rmid;
  spec.body.copy(record, 24);
  let crc = referenceCrc32c(record.subarray(24));
  crc = referenceCrc32c(record.subarray(0, 20), crc);
  record.writeUInt32LE((crc ^ 0xffffffff) >>> 0, 20);
  return record;
}

export interface BuilderOptions {
  segmentSize?: number;
  /** A segment start. */
  startLsn?: bigint;
  magic?: number;
  systemIdentifier?: bigint;
  timeline?: number;
  blockSize?: number;
}

export interface Placed {
  lsn: bigint;
  length: number;
  /** Offsets (in the stream buffer) of each byte of the record, in order. */
  offsets: number[];
}

export class WalBuilder {
  readonly segmentSize: number;
  readonly startLsn: bigint;
  private readonly magic: number;
  private readonly systemIdentifier: bigint;
  /** Page headers written from now on carry this timeline (a switch after promotion). */
  timeline: number;
  private readonly blockSize: number;
  private bytes: Buffer;
  private position = 0;
  private previous = 0n;
  readonly records: Placed[] = [];

  constructor(options: BuilderOptions = {}) {
    this.segmentSize = options.segmentSize ?? 1 << 20;
    this.startLsn = options.startLsn ?? BigInt(this.segmentSize);
    this.magic = options.magic ?? MAGIC_15;
    this.systemIdentifier = options.systemIdentifier ?? SYSTEM_ID;
    this.timeline = options.timeline ?? 1;
    this.blockSize = options.blockSize ?? PAGE;
    this.bytes = Buffer.alloc(this.segmentSize);
  }

  get lsn(): bigint {
    return this.startLsn + BigInt(this.position);
  }

  /** Continuation of a record begun before the stream: `length` filler bytes flagged as such. */
  startWithContinuation(length: number): void {
    this.writeRecordBytes(Buffer.alloc(length, 0xab), true);
    this.position = align(this.position);
  }

  append(spec: RecordSpec): Placed {
    this.position = align(this.position);
    if (this.position % PAGE === 0) this.writePageHeader(0, false);
    const lsn = this.lsn;
    const record = encodeRecord(spec, this.previous);
    const offsets = this.writeRecordBytes(record, false);
    this.previous = lsn;
    const placed = { lsn, length: record.length, offsets };
    this.records.push(placed);
    return placed;
  }

  /** An XLOG_SWITCH record; the rest of its segment stays zero. */
  switchSegment(): Placed {
    const placed = this.append({ rmid: 0, info: 0x40, body: Buffer.alloc(0) });
    const segment = Math.ceil(this.position / this.segmentSize) * this.segmentSize;
    this.ensure(segment);
    this.position = segment;
    return placed;
  }

  /** The stream so far, padded with zeros to the end of its last segment. */
  finish(): Buffer {
    const end = Math.max(this.segmentSize, Math.ceil(this.position / this.segmentSize) * this.segmentSize);
    this.ensure(end);
    return this.bytes.subarray(0, end);
  }

  /** Byte offset in the stream of `lsn`. */
  offsetOf(lsn: bigint): number {
    return Number(lsn - this.startLsn);
  }

  describe(lsn: bigint): string {
    return formatLsn(lsn);
  }

  private ensure(length: number): void {
    if (length <= this.bytes.length) return;
    const grown = Buffer.alloc(Math.ceil(length / this.segmentSize) * this.segmentSize);
    this.bytes.copy(grown);
    this.bytes = grown;
  }

  private writePageHeader(remaining: number, continuation: boolean): void {
    this.ensure(this.position + PAGE);
    const at = this.position;
    const long = (this.startLsn + BigInt(at)) % BigInt(this.segmentSize) === 0n;
    this.bytes.writeUInt16LE(this.magic, at);
    this.bytes.writeUInt16LE((continuation ? 1 : 0) | (long ? 2 : 0), at + 2);
    this.bytes.writeUInt32LE(this.timeline, at + 4);
    this.bytes.writeBigUInt64LE(this.startLsn + BigInt(at), at + 8);
    this.bytes.writeUInt32LE(remaining, at + 16);
    if (long) {
      this.bytes.writeBigUInt64LE(this.systemIdentifier, at + 24);
      this.bytes.writeUInt32LE(this.segmentSize, at + 32);
      this.bytes.writeUInt32LE(this.blockSize, at + 36);
    }
    this.position += long ? 40 : 24;
  }

  private writeRecordBytes(record: Buffer, continuationFromStart: boolean): number[] {
    const offsets: number[] = [];
    let written = 0;
    while (written < record.length) {
      if (this.position % PAGE === 0)
        this.writePageHeader(record.length - written, written > 0 || continuationFromStart);
      this.ensure(this.position + PAGE);
      const take = Math.min(record.length - written, PAGE - (this.position % PAGE));
      record.copy(this.bytes, this.position, written, written + take);
      for (let i = 0; i < take; i++) offsets.push(this.position + i);
      this.position += take;
      written += take;
    }
    return offsets;
  }
}

function align(value: number): number {
  return (value + 7) & ~7;
}
