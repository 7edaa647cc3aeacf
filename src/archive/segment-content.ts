/**
 * Reading an archive file back as plain WAL bytes, whatever its compression, with failures sorted
 * the way the archive tools report them: a missing file is `undefined` (not an error), an
 * unreadable file is a StorageError, undecodable data is an ArchiveError.
 */
import { StorageError } from "../errors.js";
import { readDecompressed } from "../wal/compression.js";

/** `readDecompressed`, with a missing file as undefined. */
async function readOrUndefined(path: string, stopAfter: number): Promise<Buffer | undefined> {
  try {
    return await readDecompressed(path, stopAfter);
  } catch (error) {
    if (error instanceof StorageError && error.errno === "ENOENT") return undefined;
    throw error;
  }
}

/**
 * The whole decompressed content of `path` (a ".partial" may stop early), or undefined when the
 * file does not exist. Stops reading once more than `limit` bytes came out: nothing valid is
 * larger than a segment, and a corrupt length must not exhaust memory.
 */
export function readArchiveContent(path: string, limit = 1 << 30): Promise<Buffer | undefined> {
  return readOrUndefined(path, limit + 1);
}

/** The first `length` decompressed bytes of `path` (fewer when the file is shorter). */
export async function readArchivePrefix(path: string, length: number): Promise<Buffer | undefined> {
  return (await readOrUndefined(path, length))?.subarray(0, length);
}
