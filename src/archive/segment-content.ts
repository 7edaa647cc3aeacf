/**
 * Reading an archive file back as plain WAL bytes, whatever its compression, with failures sorted
 * the way the archive tools report them: a missing file is `undefined` (not an error), an
 * unreadable file is a StorageError, undecodable data is an ArchiveError.
 */
import type { Readable } from "node:stream";
import { ArchiveError, PgwalError, StorageError } from "../errors.js";
import { openDecompressed } from "../wal/compression.js";

async function openOrUndefined(path: string): Promise<Readable | undefined> {
  try {
    return await openDecompressed(path);
  } catch (error) {
    if (error instanceof StorageError && error.errno === "ENOENT") return undefined;
    throw error;
  }
}

function decodeFailure(path: string, error: unknown): PgwalError {
  if (error instanceof PgwalError) return error;
  if ((error as NodeJS.ErrnoException | undefined)?.syscall !== undefined) {
    return new StorageError("read", path, error);
  }
  // zlib reports corrupt gzip data with plain Errors (code Z_DATA_ERROR, Z_BUF_ERROR…).
  return new ArchiveError(`could not decompress "${path}": ${(error as Error).message}`, { cause: error });
}

/**
 * The whole decompressed content of `path` (a ".partial" may stop early), or undefined when the
 * file does not exist. Stops reading once more than `limit` bytes came out: nothing valid is
 * larger than a segment, and a corrupt length must not exhaust memory.
 */
export async function readArchiveContent(path: string, limit = 1 << 30): Promise<Buffer | undefined> {
  const stream = await openOrUndefined(path);
  if (stream === undefined) return undefined;
  const pieces: Buffer[] = [];
  let collected = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      pieces.push(piece);
      collected += piece.byteLength;
      if (collected > limit) break;
    }
  } catch (error) {
    throw decodeFailure(path, error);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(pieces, collected);
}

/** The first `length` decompressed bytes of `path` (fewer when the file is shorter). */
export async function readArchivePrefix(path: string, length: number): Promise<Buffer | undefined> {
  const stream = await openOrUndefined(path);
  if (stream === undefined) return undefined;
  const pieces: Buffer[] = [];
  let collected = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      pieces.push(piece);
      collected += piece.byteLength;
      if (collected >= length) break;
    }
  } catch (error) {
    throw decodeFailure(path, error);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(pieces, collected).subarray(0, length);
}
