/**
 * Reading files of an archive without trusting what the directory holds. Only a regular file
 * directly inside the archive is read: the name is opened with O_NOFOLLOW (a symbolic link, which
 * could lead anywhere, is refused) and O_NONBLOCK (a FIFO cannot block the open), and the kind is
 * checked with fstat on the opened descriptor, so nothing can be swapped in between the check and
 * the read. Decompressed output is bounded by what the content itself claims: the first page's
 * segment size, plus one byte to notice a longer stream.
 */
import { constants, type Stats } from "node:fs";
import * as fsp from "node:fs/promises";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { ArchiveError, PgwalError, StorageError } from "../errors.js";
import { isValidSegmentSize } from "../lsn.js";
import { type CompressionMethod, decodeFailure, decompressedStream } from "../wal/compression.js";
import {
  KNOWN_XLOG_PAGE_MAGIC,
  LONG_PAGE_HEADER_SIZE,
  parseWalPageHeader,
  WAL_BLOCK_SIZE,
} from "../wal/page-header.js";

/** An archive entry that is not a regular file: a link, FIFO, device, socket or directory. */
export class NotRegularFileError extends ArchiveError {
  readonly fileName: string;
  constructor(fileName: string, kind: string) {
    super(`"${fileName}" in the archive is not a regular file (${kind}); it is not read`);
    this.fileName = fileName;
  }
}

const OPEN_FLAGS = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
/** Raw bytes per read. LZ4 decodes every whole block a read completes at once, so its reads are smaller. */
const RAW_CHUNK = 64 * 1024;
const RAW_CHUNK_LZ4 = 16 * 1024;

/** What kind of entry `stats` describes, in words for a message. */
export function entryKind(
  stats: Pick<
    Stats,
    "isDirectory" | "isFIFO" | "isSymbolicLink" | "isSocket" | "isBlockDevice" | "isCharacterDevice"
  >,
): string {
  if (stats.isSymbolicLink()) return "a symbolic link";
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO";
  if (stats.isSocket()) return "a socket";
  if (stats.isBlockDevice() || stats.isCharacterDevice()) return "a device";
  return "not a file";
}

/**
 * Opens `fileName` inside `directory` for reading, or returns undefined when there is no such
 * entry. Throws NotRegularFileError for anything but a regular file, StorageError when the open fails.
 */
export async function openArchiveFile(
  directory: string,
  fileName: string,
): Promise<fsp.FileHandle | undefined> {
  const path = join(directory, fileName);
  let handle: fsp.FileHandle;
  try {
    handle = await fsp.open(path, OPEN_FLAGS);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    if (code === "ELOOP" || code === "EMLINK") throw new NotRegularFileError(fileName, "a symbolic link");
    throw new StorageError("open", path, error);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new NotRegularFileError(fileName, entryKind(stats));
    return handle;
  } catch (error) {
    await handle.close();
    if (error instanceof PgwalError) throw error;
    throw new StorageError("stat", path, error);
  }
}

export interface DecodedSegment {
  /** The decompressed content, at most the first page's segment size + 1 bytes. */
  content: Buffer;
  /** Bytes the decoder handed over before reading stopped (the content plus what one read decoded to). */
  decodedBytes: number;
}

/**
 * How many decompressed bytes are worth reading, judged from the first page: its segment size
 * plus one (a longer stream is corrupt, and one byte more shows it). Without a valid long header
 * nothing after the first page can make the file usable, so reading stops there and the page
 * check reports why.
 */
function readLimit(firstPage: Buffer): number {
  if (firstPage.length >= LONG_PAGE_HEADER_SIZE) {
    const header = parseWalPageHeader(firstPage);
    if (
      KNOWN_XLOG_PAGE_MAGIC.has(header.magic) &&
      header.long &&
      isValidSegmentSize(header.long.segmentSize)
    ) {
      return header.long.segmentSize + 1;
    }
  }
  return WAL_BLOCK_SIZE;
}

/**
 * The decompressed content of the segment file `fileName` (plain, .gz, .lz4 or .zst; a .partial may
 * stop early), or undefined when it does not exist. Reading stops once the first page's segment
 * size + 1 bytes came out, or after the first page when that page has no valid long header.
 */
export async function readSegmentFile(
  directory: string,
  fileName: string,
  compression: CompressionMethod,
  partial: boolean,
  /** Stop once this many bytes came out (what `status` needs is the first page header). */
  stopAfter = Number.POSITIVE_INFINITY,
): Promise<DecodedSegment | undefined> {
  const handle = await openArchiveFile(directory, fileName);
  if (handle === undefined) return undefined;
  const raw = handle.createReadStream({ highWaterMark: rawChunkSize(compression) });
  try {
    return await decodeSegmentStream(raw, join(directory, fileName), compression, partial, stopAfter);
  } finally {
    await handle.close().catch(() => {
      // The stream may have closed it already.
    });
  }
}

/** How many raw bytes a reader of an archive file should hand over at a time. */
export function rawChunkSize(compression: CompressionMethod): number {
  return compression === "lz4" ? RAW_CHUNK_LZ4 : RAW_CHUNK;
}

/**
 * Decodes a segment file's raw bytes from any stream (a file, an object store's body) under the
 * same bound as readSegmentFile; `where` names the file in a decoding failure. The stream is
 * destroyed when reading stops.
 */
export async function decodeSegmentStream(
  raw: Readable,
  where: string,
  compression: CompressionMethod,
  partial: boolean,
  stopAfter = Number.POSITIVE_INFINITY,
): Promise<DecodedSegment> {
  const stream = decompressedStream(raw, compression, partial);
  const pieces: Buffer[] = [];
  let decodedBytes = 0;
  let limit: number | undefined;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      pieces.push(piece);
      decodedBytes += piece.byteLength;
      if (limit === undefined && decodedBytes >= WAL_BLOCK_SIZE) {
        limit = readLimit(Buffer.concat(pieces, decodedBytes).subarray(0, WAL_BLOCK_SIZE));
      }
      if (decodedBytes >= stopAfter || (limit !== undefined && decodedBytes >= limit)) break;
    }
  } catch (error) {
    throw decodeFailure(where, error);
  } finally {
    stream.destroy();
    raw.destroy();
  }
  const content = Buffer.concat(pieces, decodedBytes);
  return { content: limit === undefined ? content : content.subarray(0, limit), decodedBytes };
}

/**
 * The whole of a small archive file (timeline or backup history), or undefined when it does not
 * exist. A file larger than `maxBytes` is an ArchiveError; no more than that is ever read.
 */
export async function readSmallArchiveFile(
  directory: string,
  fileName: string,
  maxBytes: number,
): Promise<Buffer | undefined> {
  const handle = await openArchiveFile(directory, fileName);
  if (handle === undefined) return undefined;
  const path = join(directory, fileName);
  try {
    const pieces: Buffer[] = [];
    let length = 0;
    for (;;) {
      const piece = Buffer.alloc(Math.min(RAW_CHUNK, maxBytes + 1 - length));
      const { bytesRead } = await handle.read(piece, 0, piece.length, length);
      if (bytesRead === 0) break;
      pieces.push(piece.subarray(0, bytesRead));
      length += bytesRead;
      if (length > maxBytes)
        throw new ArchiveError(`archived file "${fileName}" is larger than ${maxBytes} bytes`);
    }
    return Buffer.concat(pieces, length);
  } catch (error) {
    if (error instanceof PgwalError) throw error;
    throw new StorageError("read", path, error);
  } finally {
    await handle.close();
  }
}
