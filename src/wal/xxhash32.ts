/**
 * XXH32, the checksum of the LZ4 frame format (header, block and content checksums).
 * Streaming, so that a whole WAL segment can be hashed as it is compressed.
 */

const PRIME1 = 0x9e3779b1;
const PRIME2 = 0x85ebca77;
const PRIME3 = 0xc2b2ae3d;
const PRIME4 = 0x27d4eb2f;
const PRIME5 = 0x165667b1;

function rotl(value: number, bits: number): number {
  return (value << bits) | (value >>> (32 - bits));
}

function read32(data: Uint8Array, at: number): number {
  return data[at]! | (data[at + 1]! << 8) | (data[at + 2]! << 16) | (data[at + 3]! << 24);
}

function round(acc: number, lane: number): number {
  acc = (acc + Math.imul(lane, PRIME2)) | 0;
  return Math.imul(rotl(acc, 13), PRIME1);
}

export class XxHash32 {
  private v1: number;
  private v2: number;
  private v3: number;
  private v4: number;
  /** Total length mod 2^32 is all the digest needs; `large` remembers whether 16 bytes were seen. */
  private totalLength = 0;
  private large = false;
  private readonly tail = new Uint8Array(16);
  private tailLength = 0;

  constructor(private readonly seed = 0) {
    this.v1 = (seed + PRIME1 + PRIME2) | 0;
    this.v2 = (seed + PRIME2) | 0;
    this.v3 = seed | 0;
    this.v4 = (seed - PRIME1) | 0;
  }

  update(data: Uint8Array): this {
    const length = data.byteLength;
    this.totalLength = (this.totalLength + length) >>> 0;
    if (this.tailLength + length < 16) {
      this.tail.set(data, this.tailLength);
      this.tailLength += length;
      return this;
    }
    this.large = true;
    let at = 0;
    if (this.tailLength > 0) {
      at = 16 - this.tailLength;
      this.tail.set(data.subarray(0, at), this.tailLength);
      this.consumeStripes(this.tail, 0, 16);
      this.tailLength = 0;
    }
    const stripesEnd = at + ((length - at) & ~15);
    this.consumeStripes(data, at, stripesEnd);
    this.tail.set(data.subarray(stripesEnd), 0);
    this.tailLength = length - stripesEnd;
    return this;
  }

  private consumeStripes(data: Uint8Array, start: number, end: number): void {
    let { v1, v2, v3, v4 } = this;
    for (let at = start; at < end; at += 16) {
      v1 = round(v1, read32(data, at));
      v2 = round(v2, read32(data, at + 4));
      v3 = round(v3, read32(data, at + 8));
      v4 = round(v4, read32(data, at + 12));
    }
    this.v1 = v1;
    this.v2 = v2;
    this.v3 = v3;
    this.v4 = v4;
  }

  /** The hash of everything passed to update so far (the state is left unchanged). */
  digest(): number {
    let hash = this.large
      ? (rotl(this.v1, 1) + rotl(this.v2, 7) + rotl(this.v3, 12) + rotl(this.v4, 18)) | 0
      : (this.seed + PRIME5) | 0;
    hash = (hash + this.totalLength) | 0;
    let at = 0;
    for (; at + 4 <= this.tailLength; at += 4) {
      hash = (hash + Math.imul(read32(this.tail, at), PRIME3)) | 0;
      hash = Math.imul(rotl(hash, 17), PRIME4);
    }
    for (; at < this.tailLength; at++) {
      hash = (hash + Math.imul(this.tail[at]!, PRIME5)) | 0;
      hash = Math.imul(rotl(hash, 11), PRIME1);
    }
    hash ^= hash >>> 15;
    hash = Math.imul(hash, PRIME2);
    hash ^= hash >>> 13;
    hash = Math.imul(hash, PRIME3);
    hash ^= hash >>> 16;
    return hash >>> 0;
  }
}

export function xxhash32(data: Uint8Array, seed = 0): number {
  return new XxHash32(seed).update(data).digest();
}
