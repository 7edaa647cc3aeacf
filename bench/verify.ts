/**
 * Output verification: every complete segment a run was expected to produce must exist in its
 * archive and be byte-identical to the server's copy in pg_wal, so a fast wrong answer never counts.
 */
import { open, readdir, stat } from "node:fs/promises";
import { join } from "node:path";
import { walFileName } from "../src/wal/names.js";

export interface SegmentRange {
  timeline: number;
  /** First segment number expected complete. */
  firstSegment: bigint;
  /** One past the last segment number expected complete. */
  endSegment: bigint;
  segmentSize: number;
}

const CHUNK = 1024 * 1024;

/** Compares two files chunk by chunk; returns a description of the first difference, or undefined. */
async function firstDifference(a: string, b: string, size: number): Promise<string | undefined> {
  const [fa, fb] = await Promise.all([open(a, "r"), open(b, "r")]);
  try {
    const [sa, sb] = await Promise.all([fa.stat(), fb.stat()]);
    if (sa.size !== size || sb.size !== size) return `sizes ${sa.size} and ${sb.size}, expected ${size}`;
    const ba = Buffer.allocUnsafe(CHUNK);
    const bb = Buffer.allocUnsafe(CHUNK);
    for (let offset = 0; offset < size; offset += CHUNK) {
      const length = Math.min(CHUNK, size - offset);
      await Promise.all([fa.read(ba, 0, length, offset), fb.read(bb, 0, length, offset)]);
      if (!ba.subarray(0, length).equals(bb.subarray(0, length)))
        return `content differs in bytes ${offset}..${offset + length}`;
    }
    return undefined;
  } finally {
    await Promise.all([fa.close(), fb.close()]);
  }
}

/**
 * Checks `archiveDir` against `walDir`: all segments of `range` present and identical; any other
 * complete segment file in the archive must match the server too. Returns the problems found.
 */
export async function verifyArchive(
  archiveDir: string,
  walDir: string,
  range: SegmentRange,
): Promise<string[]> {
  const problems: string[] = [];
  const expected = new Set<string>();
  for (let seg = range.firstSegment; seg < range.endSegment; seg++) {
    expected.add(walFileName(range.timeline, seg, range.segmentSize));
  }
  const present = new Set((await readdir(archiveDir)).filter((n) => /^[0-9A-F]{24}$/.test(n)));
  for (const name of expected) {
    if (!present.has(name)) problems.push(`missing complete segment ${name}`);
  }
  for (const name of present) {
    const server = join(walDir, name);
    const exists = await stat(server).then(
      () => true,
      () => false,
    );
    if (!exists) {
      problems.push(`${name}: not in the server's pg_wal, cannot compare`);
      continue;
    }
    const diff = await firstDifference(join(archiveDir, name), server, range.segmentSize);
    if (diff !== undefined) problems.push(`${name}: ${diff}`);
  }
  return problems;
}
