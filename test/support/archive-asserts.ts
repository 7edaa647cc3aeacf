/**
 * "Nothing lost" checks shared by receiver tests: every completed segment in an archive equals the
 * server's own file, the partial segment holds the server's bytes up to a position, and the
 * archive has no gap between its first and last segment.
 */
import assert from "node:assert/strict";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import type { Lsn } from "../../src/lsn.js";
import { openDecompressed } from "../../src/wal/compression.js";
import { parseArchiveFileName, parseWalFileName } from "../../src/wal/names.js";
import type { PgCluster } from "./cluster.js";

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Decompressed content of an archive file (plain, .gz, .lz4, partial or not). */
export async function archiveFileContent(path: string): Promise<Buffer> {
  return readAll(await openDecompressed(path));
}

export interface ArchiveSummary {
  complete: string[];
  partial: string[];
  history: string[];
}

export interface ListOptions {
  /**
   * Skip `NAME.<ext>.partial.tmp`: a compressed segment's replacement stream that a crash (or power
   * cut) left before it replaced the `.partial` it was catching up with. The `.partial` itself is
   * what counts; outside a crash test such a file is a leak and must fail the listing.
   */
  allowReplacementInProgress?: boolean;
}

const REPLACEMENT_IN_PROGRESS = /^[0-9A-F]{24}\.(gz|lz4|zst)\.partial\.tmp$/;

export async function listArchive(directory: string, options: ListOptions = {}): Promise<ArchiveSummary> {
  const summary: ArchiveSummary = { complete: [], partial: [], history: [] };
  for (const name of (await readdir(directory)).sort()) {
    if (options.allowReplacementInProgress === true && REPLACEMENT_IN_PROGRESS.test(name)) continue;
    if (/^[0-9A-F]{8}\.history$/.test(name)) {
      summary.history.push(name);
      continue;
    }
    const parsed = parseArchiveFileName(name);
    assert.ok(parsed, `unexpected file in archive: ${name}`);
    (parsed.partial ? summary.partial : summary.complete).push(name);
  }
  return summary;
}

/**
 * Asserts every complete segment equals `server`'s file in pg_wal (decompressed), that complete
 * segments of each timeline are contiguous, and returns the archive listing.
 */
export async function assertCompleteSegmentsMatchServer(
  directory: string,
  server: PgCluster,
  options: ListOptions = {},
): Promise<ArchiveSummary> {
  const summary = await listArchive(directory, options);
  const segNosByTimeline = new Map<number, bigint[]>();
  for (const name of summary.complete) {
    const walName = parseArchiveFileName(name)!.walFileName;
    const ours = await archiveFileContent(join(directory, name));
    const theirs = await readFile(server.walPath(walName));
    assert.equal(ours.length, server.walSegmentSize, `${name}: size`);
    assert.ok(ours.equals(theirs), `${name} differs from the server's ${walName}`);
    const { timeline, segNo } = parseWalFileName(walName, server.walSegmentSize)!;
    segNosByTimeline.set(timeline, [...(segNosByTimeline.get(timeline) ?? []), segNo]);
  }
  for (const [timeline, segNos] of segNosByTimeline) {
    segNos.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = 1; i < segNos.length; i++) {
      assert.equal(
        segNos[i],
        segNos[i - 1]! + 1n,
        `gap in timeline ${timeline} after segment ${segNos[i - 1]}`,
      );
    }
  }
  return summary;
}

/** Asserts the partial file holds exactly the server's bytes of that segment up to `upTo` (a segment offset). */
export async function assertPartialMatchesServer(
  directory: string,
  partialName: string,
  server: PgCluster,
  upTo: number,
): Promise<void> {
  const walName = parseArchiveFileName(partialName)!.walFileName;
  const ours = await archiveFileContent(join(directory, partialName));
  const theirs = await readFile(server.walPath(walName));
  assert.ok(ours.length >= upTo, `${partialName} holds ${ours.length} bytes, expected at least ${upTo}`);
  assert.ok(
    ours.subarray(0, upTo).equals(theirs.subarray(0, upTo)),
    `${partialName} differs from the server's ${walName}`,
  );
}

/** Segment offset of `lsn`. */
export function offsetIn(lsn: Lsn, segmentSize: number): number {
  return Number(lsn % BigInt(segmentSize));
}

/**
 * The archive holds the server's WAL up to `lsn` (what the server was told is flushed): complete
 * segments are identical and contiguous, and the segment holding `lsn` is present up to it.
 */
export async function assertArchiveCovers(
  directory: string,
  server: PgCluster,
  lsn: Lsn,
  options: ListOptions = {},
): Promise<void> {
  const summary = await assertCompleteSegmentsMatchServer(directory, server, options);
  const size = server.walSegmentSize;
  const offset = offsetIn(lsn, size);
  if (offset === 0 || lsn === 0n) return;
  const segNo = lsn / BigInt(size);
  const holder = summary.complete.concat(summary.partial).find((name) => {
    const parsed = parseWalFileName(parseArchiveFileName(name)!.walFileName, size);
    return parsed?.segNo === segNo;
  });
  assert.ok(holder, `no file holds the segment of flushed position ${lsn.toString(16)}`);
  if (holder.endsWith(".partial")) await assertPartialMatchesServer(directory, holder, server, offset);
}
