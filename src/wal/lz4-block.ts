/**
 * The LZ4 block format (sequences of literals + back-references), written from its public
 * specification: a greedy, hash-table compressor in the spirit of LZ4's fast mode, and a
 * bounds-checked decoder. Frames (lz4-frame.ts) are built from these blocks.
 */
import { ArchiveError } from "../errors.js";

const MIN_MATCH = 4;
/** The last 5 bytes of a block are always literals. */
const LAST_LITERALS = 5;
/** A match must start at least 12 bytes before the end of the block. */
const MATCH_FIND_LIMIT = 12;
const MAX_OFFSET = 65_535;
const HASH_LOG = 16;
/** After 2^SKIP_TRIGGER misses in a row the search starts stepping faster (incompressible data). */
const SKIP_TRIGGER = 6;
/** Table entries are "generation base + position"; rebase before they would overflow an Int32. */
const MAX_TABLE_VALUE = 0x7000_0000;

/** Largest compressed size of `length` input bytes. */
export function lz4CompressBound(length: number): number {
  return length + Math.floor(length / 255) + 16;
}

function read32(data: Uint8Array, at: number): number {
  return data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24);
}

function hashOf(sequence: number): number {
  return Math.imul(sequence, 2654435761) >>> (32 - HASH_LOG);
}

function writeLengthExtension(dst: Uint8Array, op: number, rest: number): number {
  while (rest >= 255) {
    dst[op++] = 255;
    rest -= 255;
  }
  dst[op++] = rest;
  return op;
}

function copyBytes(dst: Uint8Array, op: number, src: Uint8Array, from: number, to: number): void {
  if (to - from < 32) {
    for (let i = from; i < to; i++) dst[op++] = src[i]!;
  } else {
    dst.set(src.subarray(from, to), op);
  }
}

/** Writes literals src[anchor, literalEnd) then (if matchLength > 0) a match; returns the new output position. */
function writeSequence(
  dst: Uint8Array,
  op: number,
  src: Uint8Array,
  anchor: number,
  literalEnd: number,
  offset: number,
  matchLength: number,
): number {
  const literalLength = literalEnd - anchor;
  const tokenAt = op++;
  let token: number;
  if (literalLength >= 15) {
    token = 0xf0;
    op = writeLengthExtension(dst, op, literalLength - 15);
  } else {
    token = literalLength << 4;
  }
  copyBytes(dst, op, src, anchor, literalEnd);
  op += literalLength;
  if (matchLength > 0) {
    dst[op++] = offset & 0xff;
    dst[op++] = offset >>> 8;
    const extra = matchLength - MIN_MATCH;
    if (extra >= 15) {
      token |= 15;
      op = writeLengthExtension(dst, op, extra - 15);
    } else {
      token |= extra;
    }
  }
  dst[tokenAt] = token;
  return op;
}

/**
 * Compresses independent blocks. Keeps one hash table across calls (no per-block clearing: old
 * entries are recognised by their generation and ignored), so small blocks after frequent
 * flushes stay cheap.
 */
export class Lz4BlockCompressor {
  private readonly table = new Int32Array(1 << HASH_LOG);
  private generationBase = 1;

  /**
   * Compresses `src` into `dst` at `dstStart` (which needs lz4CompressBound(src.length) bytes of
   * room) and returns the compressed length. The block never refers outside `src`.
   */
  compress(src: Uint8Array, dst: Uint8Array, dstStart = 0): number {
    const length = src.byteLength;
    if (this.generationBase + length >= MAX_TABLE_VALUE) {
      this.table.fill(0);
      this.generationBase = 1;
    }
    const base = this.generationBase;
    this.generationBase += length + 1;
    const table = this.table;
    let op = dstStart;
    let anchor = 0;
    if (length > MATCH_FIND_LIMIT) {
      const matchLimit = length - LAST_LITERALS;
      const lastMatchStart = length - MATCH_FIND_LIMIT;
      let ip = 0;
      let attempts = 1 << SKIP_TRIGGER;
      while (ip <= lastMatchStart) {
        const sequence = read32(src, ip);
        const slot = hashOf(sequence);
        const candidate = table[slot]! - base;
        table[slot] = base + ip;
        if (candidate < 0 || ip - candidate > MAX_OFFSET || read32(src, candidate) !== sequence) {
          ip += attempts++ >> SKIP_TRIGGER;
          continue;
        }
        attempts = 1 << SKIP_TRIGGER;
        let reference = candidate;
        while (ip > anchor && reference > 0 && src[ip - 1] === src[reference - 1]) {
          ip--;
          reference--;
        }
        let end = ip + MIN_MATCH;
        let referenceEnd = reference + MIN_MATCH;
        while (end < matchLimit && src[end] === src[referenceEnd]) {
          end++;
          referenceEnd++;
        }
        op = writeSequence(dst, op, src, anchor, ip, ip - reference, end - ip);
        // Remember a position inside the match too: helps the next search on repetitive data.
        if (end - 2 > ip && end - 2 <= lastMatchStart) table[hashOf(read32(src, end - 2))] = base + end - 2;
        ip = end;
        anchor = end;
      }
    }
    op = writeSequence(dst, op, src, anchor, length, 0, 0);
    return op - dstStart;
  }
}

function corrupt(reason: string): ArchiveError {
  return new ArchiveError(`corrupt LZ4 data: ${reason}`);
}

/**
 * Decodes the block src[srcStart, srcEnd) into dst starting at dstStart, never writing at or past
 * dstEnd. Back-references may reach down to windowStart (earlier blocks' output in linked-block
 * frames; equal to dstStart for independent blocks). Returns the position after the output.
 */
export function lz4DecompressBlock(
  src: Uint8Array,
  srcStart: number,
  srcEnd: number,
  dst: Uint8Array,
  dstStart: number,
  dstEnd: number,
  windowStart = dstStart,
): number {
  let ip = srcStart;
  let op = dstStart;
  while (ip < srcEnd) {
    const token = src[ip++]!;
    let literalLength = token >>> 4;
    if (literalLength === 15) {
      let byte: number;
      do {
        if (ip >= srcEnd) throw corrupt("literal length runs past the block");
        byte = src[ip++]!;
        literalLength += byte;
      } while (byte === 255);
    }
    if (ip + literalLength > srcEnd) throw corrupt("literals run past the block");
    if (op + literalLength > dstEnd) throw corrupt("output larger than the block size");
    copyBytes(dst, op, src, ip, ip + literalLength);
    ip += literalLength;
    op += literalLength;
    if (ip === srcEnd) break; // the last sequence has literals only
    if (ip + 2 > srcEnd) throw corrupt("truncated match offset");
    const offset = src[ip]! | (src[ip + 1]! << 8);
    ip += 2;
    if (offset === 0 || op - offset < windowStart) throw corrupt("match offset out of range");
    let matchLength = token & 15;
    if (matchLength === 15) {
      let byte: number;
      do {
        if (ip >= srcEnd) throw corrupt("match length runs past the block");
        byte = src[ip++]!;
        matchLength += byte;
      } while (byte === 255);
    }
    matchLength += MIN_MATCH;
    if (op + matchLength > dstEnd) throw corrupt("output larger than the block size");
    const from = op - offset;
    if (offset >= matchLength) {
      if (matchLength < 32) {
        for (let i = 0; i < matchLength; i++) dst[op + i] = dst[from + i]!;
      } else {
        dst.copyWithin(op, from, from + matchLength);
      }
    } else {
      // Overlapping copy (a repeating pattern of period `offset`): copy in doubling runs, each
      // starting at a multiple of the period so that source and destination never overlap.
      let done = 0;
      while (done < matchLength) {
        const run = Math.min(done + offset, matchLength - done);
        dst.copyWithin(op + done, from, from + run);
        done += run;
      }
    }
    op += matchLength;
  }
  return op;
}
