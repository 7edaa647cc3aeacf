/**
 * A WAL location (LSN): a 64-bit byte position in the WAL stream, kept as a bigint so that
 * positions past 2^53 stay exact. Text form is PostgreSQL's "%X/%X" (high/low 32 bits, hex).
 */
export type Lsn = bigint;

export const INVALID_LSN: Lsn = 0n;

const LSN_TEXT = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;
const MAX_LSN = 0xffff_ffff_ffff_ffffn;

/** Parses "16/B374D848". Returns undefined for anything that is not a valid LSN. */
export function tryParseLsn(text: string): Lsn | undefined {
  const match = LSN_TEXT.exec(text.trim());
  if (!match) return undefined;
  return (BigInt(`0x${match[1]}`) << 32n) | BigInt(`0x${match[2]}`);
}

export function parseLsn(text: string): Lsn {
  const lsn = tryParseLsn(text);
  if (lsn === undefined) throw new RangeError(`invalid LSN "${text}"`);
  return lsn;
}

/** Formats as PostgreSQL does: upper-case hex, no zero padding ("0/16B3748"). */
export function formatLsn(lsn: Lsn): string {
  if (lsn < 0n || lsn > MAX_LSN) throw new RangeError(`LSN out of range: ${lsn}`);
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffff_ffffn).toString(16).toUpperCase()}`;
}

export function compareLsn(a: Lsn, b: Lsn): -1 | 0 | 1 {
  return a < b ? -1 : a > b ? 1 : 0;
}

export function maxLsn(a: Lsn, b: Lsn): Lsn {
  return a > b ? a : b;
}

export function minLsn(a: Lsn, b: Lsn): Lsn {
  return a < b ? a : b;
}

/** Segment sizes PostgreSQL accepts for wal_segment_size: powers of two from 1 MB to 1 GB. */
export function isValidSegmentSize(bytes: number): boolean {
  return Number.isInteger(bytes) && bytes >= 1 << 20 && bytes <= 1 << 30 && (bytes & (bytes - 1)) === 0;
}

/** Segment number holding `lsn` (XLByteToSeg). */
export function segmentNumberOf(lsn: Lsn, segmentSize: number): bigint {
  return lsn / BigInt(segmentSize);
}

/** Byte offset of `lsn` inside its segment (XLogSegmentOffset). */
export function segmentOffsetOf(lsn: Lsn, segmentSize: number): number {
  return Number(lsn % BigInt(segmentSize));
}

/** First LSN of the segment that holds `lsn`: where pg_receivewal always restarts streaming. */
export function segmentStartOf(lsn: Lsn, segmentSize: number): Lsn {
  return lsn - (lsn % BigInt(segmentSize));
}

/** First LSN of segment number `segNo`. */
export function segmentStartLsn(segNo: bigint, segmentSize: number): Lsn {
  return segNo * BigInt(segmentSize);
}
