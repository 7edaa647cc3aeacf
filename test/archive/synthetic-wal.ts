/** Synthetic WAL segments with valid page headers, and compression bombs, for archive tests that need no server. */
import { open, stat } from "node:fs/promises";
import { walFileName } from "../../src/wal/names.js";

export const SYNTHETIC_SEGMENT_SIZE = 1 << 20;
export const SYNTHETIC_PAGE = 8192;
const MAGIC_15 = 0xd110;
const SYSID = 7_300_000_000_000_000_001n;

/** Segment `segNo` of timeline 1 (1 MiB): valid headers on the first `usedPages` pages, zeros after. */
export function syntheticSegment(segNo: bigint, usedPages = SYNTHETIC_SEGMENT_SIZE / SYNTHETIC_PAGE): Buffer {
  const bytes = Buffer.alloc(SYNTHETIC_SEGMENT_SIZE);
  for (let page = 0; page < usedPages; page++) {
    const at = page * SYNTHETIC_PAGE;
    bytes.writeUInt16LE(MAGIC_15, at);
    bytes.writeUInt16LE(page === 0 ? 0x0002 : 0, at + 2);
    bytes.writeUInt32LE(1, at + 4);
    bytes.writeBigUInt64LE(segNo * BigInt(SYNTHETIC_SEGMENT_SIZE) + BigInt(at), at + 8);
    if (page === 0) {
      bytes.writeBigUInt64LE(SYSID, 24);
      bytes.writeUInt32LE(SYNTHETIC_SEGMENT_SIZE, 32);
      bytes.writeUInt32LE(SYNTHETIC_PAGE, 36);
    }
    bytes.fill(0xab, at + 40, at + 100); // some record bytes
  }
  return bytes;
}

/** The timeline-1 segment name of `segNo` for 1 MiB segments. */
export function syntheticName(segNo: bigint): string {
  return walFileName(1, segNo, SYNTHETIC_SEGMENT_SIZE);
}

const BOMB_PIECE = 64 * 1024 * 1024;

/**
 * A compression bomb: `head` followed by `zeroBytes` zeros (a multiple of 64 MiB), written piece
 * by piece as concatenated gzip members or LZ4 frames (`compress` does one piece). Returns its size on disk.
 */
export async function writeBomb(
  path: string,
  compress: (data: Buffer) => Buffer,
  head: Buffer,
  zeroBytes = 2 * 1024 * 1024 * 1024,
): Promise<number> {
  const zeros = compress(Buffer.alloc(BOMB_PIECE));
  const handle = await open(path, "w");
  try {
    if (head.length > 0) await handle.write(compress(head));
    for (let written = 0; written < zeroBytes; written += BOMB_PIECE) await handle.write(zeros);
  } finally {
    await handle.close();
  }
  return (await stat(path)).size;
}
