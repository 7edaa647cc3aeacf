/**
 * Where to resume streaming from, judged by the archive directory alone (the directory part of
 * pg_receivewal's FindStreamingStart): the highest segment wins, then the highest timeline, and
 * a complete file beats a partial one of the same segment. Completed files must really be
 * complete: plain ones by their size, .gz by the ISIZE trailer, .lz4 and .zst by decoding them.
 */
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import { ArchiveError, StorageError } from "../errors.js";
import { type Lsn, segmentStartLsn } from "../lsn.js";
import { type CompressionMethod, openDecompressed } from "./compression.js";
import { storageCall } from "./fsync.js";
import { Lz4FrameDecoder } from "./lz4-frame.js";
import { parseArchiveFileName, parseWalFileName } from "./names.js";

export interface ArchivePosition {
  timeline: number;
  /** Segment number of the file that decided the position. */
  segNo: bigint;
  /** Where to stream from: the next segment after a complete file, or the start of a partial one. */
  startLsn: Lsn;
  /** Name of that file in the directory (with its suffixes). */
  fileName: string;
  partial: boolean;
  compression: CompressionMethod;
}

const LZ4_READ_SIZE = 64 * 1024;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | undefined)?.code === "ENOENT";
}

/** Uncompressed size from a gzip file's ISIZE trailer (size mod 2^32), or undefined if too short. */
async function gzipTrailerSize(path: string): Promise<number | undefined> {
  const handle = await fsp.open(path, "r");
  try {
    const { size } = await handle.stat();
    if (size < 4) return undefined;
    const trailer = Buffer.alloc(4);
    await handle.read(trailer, 0, 4, size - 4);
    return trailer.readUInt32LE(0);
  } finally {
    await handle.close();
  }
}

/**
 * Decoded size of an lz4 file, counting no further than just past `limit`. Throws ArchiveError
 * for corrupt or unfinished frames.
 */
async function lz4DecodedSize(path: string, limit: number): Promise<number> {
  const handle = await fsp.open(path, "r");
  try {
    const decoder = new Lz4FrameDecoder();
    const buffer = Buffer.allocUnsafe(LZ4_READ_SIZE);
    let decoded = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, LZ4_READ_SIZE, null);
      if (bytesRead === 0) break;
      // The decoder keeps views of what it has not consumed yet: hand it a copy.
      for (const piece of decoder.push(Buffer.from(buffer.subarray(0, bytesRead))))
        decoded += piece.byteLength;
      if (decoded > limit) return decoded;
    }
    decoder.finish();
    return decoded;
  } finally {
    await handle.close();
  }
}

/** Decoded size of a zstd file, counting no further than just past `limit`. */
async function zstdDecodedSize(path: string, limit: number): Promise<number> {
  const stream = await openDecompressed(path, { method: "zstd", allowTruncated: false });
  let decoded = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      decoded += piece.byteLength;
      if (decoded > limit) break;
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).syscall !== undefined) throw error;
    // zlib's decoding errors carry a code too: make them "not a whole segment", not an I/O failure.
    throw new ArchiveError((error as Error).message, { cause: error });
  } finally {
    stream.destroy();
  }
  return decoded;
}

/** Whether a completed (non-partial) file has a whole segment's worth of WAL; warns if not. */
async function isWholeSegment(
  directory: string,
  fileName: string,
  compression: CompressionMethod,
  segmentSize: number,
  warn: (message: string) => void,
): Promise<boolean> {
  const path = join(directory, fileName);
  if (compression === "none") {
    const { size } = await fsp.stat(path);
    if (size === segmentSize) return true;
    warn(`segment file "${fileName}" has incorrect size ${size}, skipping`);
    return false;
  }
  if (compression === "gzip") {
    const size = await gzipTrailerSize(path);
    if (size === segmentSize % 2 ** 32) return true;
    warn(`compressed segment file "${fileName}" has incorrect uncompressed size ${size ?? 0}, skipping`);
    return false;
  }
  let size: number;
  try {
    size =
      compression === "zstd"
        ? await zstdDecodedSize(path, segmentSize)
        : await lz4DecodedSize(path, segmentSize);
  } catch (error) {
    if (error instanceof StorageError || (error as NodeJS.ErrnoException).syscall !== undefined) throw error;
    warn(`could not decompress file "${fileName}": ${(error as Error).message}, skipping`);
    return false;
  }
  if (size === segmentSize) return true;
  warn(`compressed segment file "${fileName}" has incorrect uncompressed size ${size}, skipping`);
  return false;
}

interface Candidate {
  timeline: number;
  segNo: bigint;
  fileName: string;
  partial: boolean;
  compression: CompressionMethod;
}

/** Sort order: preferred first (highest segment, then highest timeline, complete before partial). */
function byPreference(a: Candidate, b: Candidate): number {
  if (a.segNo !== b.segNo) return a.segNo > b.segNo ? -1 : 1;
  if (a.timeline !== b.timeline) return b.timeline - a.timeline;
  return Number(a.partial) - Number(b.partial);
}

/**
 * Scans `directory`; returns undefined when it holds no usable WAL file. Candidates are checked
 * best first and the scan stops at the first one that passes, so a large archive costs one size
 * check (warnings name only files that would otherwise have won).
 */
export async function findStreamingStart(
  directory: string,
  segmentSize: number,
  onWarning: (msg: string) => void = () => {},
): Promise<ArchivePosition | undefined> {
  const entries = await storageCall("read directory", directory, () =>
    fsp.readdir(directory, { withFileTypes: true }),
  );
  const candidates: Candidate[] = [];
  for (const entry of entries) {
    if (!entry.isFile()) continue;
    const parsed = parseArchiveFileName(entry.name);
    if (!parsed) continue;
    const position = parseWalFileName(parsed.walFileName, segmentSize);
    if (!position) continue;
    candidates.push({
      ...position,
      fileName: entry.name,
      partial: parsed.partial,
      compression: parsed.compression,
    });
  }
  candidates.sort(byPreference);
  for (const candidate of candidates) {
    if (!candidate.partial) {
      let whole: boolean;
      try {
        whole = await isWholeSegment(
          directory,
          candidate.fileName,
          candidate.compression,
          segmentSize,
          onWarning,
        );
      } catch (error) {
        if (isMissing(error)) continue; // removed while we looked (e.g. by a cleanup job)
        if (error instanceof StorageError) throw error;
        throw new StorageError("read", join(directory, candidate.fileName), error);
      }
      if (!whole) continue;
    }
    const startSegment = candidate.partial ? candidate.segNo : candidate.segNo + 1n;
    return { ...candidate, startLsn: segmentStartLsn(startSegment, segmentSize) };
  }
  return undefined;
}
