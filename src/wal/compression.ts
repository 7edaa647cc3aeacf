/**
 * Compression of archived segments: pg_receivewal's -Z/--compress parsing (same accepted forms,
 * same messages) and a way to read any archive file back decompressed.
 */
import * as fsp from "node:fs/promises";
import { pipeline, type Readable } from "node:stream";
import { createGunzip, constants as zlibConstants } from "node:zlib";
import { ArchiveError, PgwalError, StorageError, UsageError } from "../errors.js";
import { storageCall } from "./fsync.js";
import { createLz4DecompressStream } from "./lz4-frame.js";
import { parseArchiveFileName } from "./names.js";
import { createZstdDecompressStream, zstdAvailable, zstdUnavailableMessage } from "./zstd-storage.js";

export type CompressionMethod = "none" | "gzip" | "lz4" | "zstd";

export interface CompressionSpec {
  method: CompressionMethod;
  /** Only present when given explicitly; absent means the method's default. */
  level?: number;
  /** zstd long-distance matching (`zstd:long`). */
  long?: boolean;
}

type AlgorithmName = CompressionMethod;

/** Accepted level ranges; `defaultLevel` is also accepted (gzip's -1 is zlib's default). */
const LEVELS: Record<AlgorithmName, { min: number; max: number; defaultLevel: number }> = {
  none: { min: 1, max: 1, defaultLevel: 0 },
  gzip: { min: 1, max: 9, defaultLevel: -1 },
  lz4: { min: 1, max: 12, defaultLevel: 0 },
  zstd: { min: -131072, max: 22, defaultLevel: 3 },
};

/** C strtol with the whole string consumed: optional blanks, optional sign, digits. */
const WHOLE_INTEGER = /^[ \t\n\v\f\r]*[+-]?[0-9]+$/;

function invalid(detail: string): UsageError {
  return new UsageError(`invalid compression specification: ${detail}`);
}

function isAlgorithmName(name: string): name is AlgorithmName {
  return name === "none" || name === "gzip" || name === "lz4" || name === "zstd";
}

/** Parses the detail after "METHOD:" (a bare level, or keyword[=value] items separated by commas). */
function parseDetail(detail: string): { level?: number; workers: boolean; long: boolean } {
  if (detail.length > 0 && WHOLE_INTEGER.test(detail))
    return { level: Number.parseInt(detail, 10), workers: false, long: false };
  const result: { level?: number; workers: boolean; long: boolean } = { workers: false, long: false };
  for (const item of detail.split(",")) {
    const equals = item.indexOf("=");
    const keyword = equals < 0 ? item : item.slice(0, equals);
    const value = equals < 0 ? undefined : item.slice(equals + 1);
    if (keyword.length === 0) throw invalid("found empty string where a compression option was expected");
    if (keyword === "level" || keyword === "workers") {
      if (value === undefined) throw invalid(`compression option "${keyword}" requires a value`);
      if (!WHOLE_INTEGER.test(value))
        throw invalid(`value for compression option "${keyword}" must be an integer`);
      if (keyword === "level") result.level = Number.parseInt(value, 10);
      else result.workers = true;
    } else if (keyword === "long") {
      if (value !== undefined && !/^(yes|on|1|no|off|0)$/i.test(value)) {
        throw invalid(`value for compression option "${keyword}" must be a Boolean value`);
      }
      result.long = true;
    } else {
      throw invalid(`unrecognized compression option: "${keyword}"`);
    }
  }
  return result;
}

export interface CompressionSpecOptions {
  /**
   * Accept zstd (pgwal's own extension). Off when pgwal runs as pg_receivewal, which refuses it:
   * the drop-in must not accept what the original refuses.
   */
  allowZstd?: boolean;
}

/**
 * pg_receivewal's -Z: "gzip", "gzip:5", "gzip:level=5", "lz4", "lz4:1", "none", or a bare
 * integer (0 = none, N = gzip:N); with `allowZstd`, also "zstd", "zstd:N", "zstd:level=N,long".
 * Errors are UsageErrors worded as pg_receivewal words them.
 */
export function parseCompressionSpec(text: string, options: CompressionSpecOptions = {}): CompressionSpec {
  let algorithmText: string;
  let detail: string | undefined;
  if (text.length === 0 || WHOLE_INTEGER.test(text)) {
    // Backward compatibility: a bare integer is a gzip level, and 0 means no compression.
    const value = text.length === 0 ? 0 : Number.parseInt(text, 10);
    algorithmText = value === 0 ? "none" : "gzip";
    detail = value === 0 ? undefined : text;
  } else {
    const colon = text.indexOf(":");
    algorithmText = colon < 0 ? text : text.slice(0, colon);
    detail = colon < 0 ? undefined : text.slice(colon + 1);
  }
  if (!isAlgorithmName(algorithmText)) {
    throw new UsageError(`unrecognized compression algorithm: "${algorithmText}"`);
  }
  const algorithm = algorithmText;
  const parsed = detail === undefined ? { workers: false, long: false } : parseDetail(detail);
  const range = LEVELS[algorithm];
  const level = parsed.level ?? range.defaultLevel;
  if (algorithm === "none" && level !== 0) {
    throw invalid(`compression algorithm "none" does not accept a compression level`);
  }
  if ((level < range.min || level > range.max) && level !== range.defaultLevel) {
    throw invalid(
      `compression algorithm "${algorithm}" expects a compression level between ${range.min} and ${range.max} (default at ${range.defaultLevel})`,
    );
  }
  if (parsed.workers && algorithm !== "zstd") {
    throw invalid(`compression algorithm "${algorithm}" does not accept a worker count`);
  }
  if (parsed.long && algorithm !== "zstd") {
    throw invalid(`compression algorithm "${algorithm}" does not support long-distance mode`);
  }
  if (algorithm === "zstd") {
    if (options.allowZstd !== true) throw new UsageError("compression with ZSTD is not yet supported");
    if (parsed.workers) throw invalid(`pgwal does not support compression option "workers"`);
    if (!zstdAvailable()) throw new UsageError(zstdUnavailableMessage());
  }
  const spec: CompressionSpec = { method: algorithm };
  if (parsed.level !== undefined) spec.level = parsed.level;
  if (parsed.long) spec.long = true;
  return spec;
}

/** File-name suffix of a compressed segment (before any ".partial"). */
export function archiveSuffix(method: CompressionMethod): "" | ".gz" | ".lz4" | ".zst" {
  switch (method) {
    case "none":
      return "";
    case "gzip":
      return ".gz";
    case "lz4":
      return ".lz4";
    case "zstd":
      return ".zst";
  }
}

export interface OpenDecompressedOptions {
  /** Compression of the file; by default taken from its name (".gz", ".lz4", else none). */
  method?: CompressionMethod;
  /**
   * Accept a compressed stream that stops early (a ".partial" being written: gzip flushed with
   * Z_SYNC_FLUSH, lz4 blocks without an end mark). Default: true for names ending in ".partial".
   */
  allowTruncated?: boolean;
}

function methodFromName(path: string): CompressionMethod {
  const base = path.slice(path.lastIndexOf("/") + 1);
  const parsed = parseArchiveFileName(base);
  if (parsed) return parsed.compression;
  const withoutPartial = base.endsWith(".partial") ? base.slice(0, -".partial".length) : base;
  if (withoutPartial.endsWith(".gz")) return "gzip";
  if (withoutPartial.endsWith(".lz4")) return "lz4";
  return withoutPartial.endsWith(".zst") ? "zstd" : "none";
}

/**
 * Opens an archive file and returns a stream of its decompressed content. The open itself fails
 * here (StorageError); corrupt data fails the stream (ArchiveError for lz4, zlib's error for gzip).
 */
export async function openDecompressed(
  path: string,
  options: OpenDecompressedOptions = {},
): Promise<Readable> {
  const method = options.method ?? methodFromName(path);
  const allowTruncated = options.allowTruncated ?? path.endsWith(".partial");
  const handle = await storageCall("open", path, () => fsp.open(path, "r"));
  return decompressedStream(handle.createReadStream({ highWaterMark: 256 * 1024 }), method, allowTruncated);
}

/**
 * `raw` decompressed by `method` (`raw` itself for "none"). `allowTruncated` accepts a stream that
 * stops after a flushed block, as a `.partial` being written does. Errors reach the consumer
 * through the returned stream; both are destroyed on failure.
 */
export function decompressedStream(
  raw: Readable,
  method: CompressionMethod,
  allowTruncated: boolean,
): Readable {
  if (method === "none") return raw;
  const decoder =
    method === "gzip"
      ? createGunzip(allowTruncated ? { finishFlush: zlibConstants.Z_SYNC_FLUSH } : {})
      : method === "zstd"
        ? createZstdDecompressStream(allowTruncated)
        : createLz4DecompressStream({ allowTruncated });
  return pipeline(raw, decoder, () => {
    // Errors reach the consumer through `decoder`.
  });
}

/**
 * Decompressed bytes of `path` from its start, read until at least `stopAfter` bytes came out or
 * the content ends (so a corrupt length cannot exhaust memory). An unreadable file is a
 * StorageError, undecodable data an ArchiveError.
 */
export async function readDecompressed(
  path: string,
  stopAfter: number,
  options: OpenDecompressedOptions = {},
): Promise<Buffer> {
  const stream = await openDecompressed(path, options);
  const pieces: Buffer[] = [];
  let collected = 0;
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      pieces.push(piece);
      collected += piece.byteLength;
      if (collected >= stopAfter) break;
    }
  } catch (error) {
    throw decodeFailure(path, error);
  } finally {
    stream.destroy();
  }
  return Buffer.concat(pieces, collected);
}

/** A failure while reading decompressed bytes of `path`: an I/O error, or data that does not decode. */
export function decodeFailure(path: string, error: unknown): PgwalError {
  if (error instanceof PgwalError) return error;
  if ((error as NodeJS.ErrnoException | undefined)?.syscall !== undefined) {
    return new StorageError("read", path, error);
  }
  // zlib reports corrupt gzip/zstd data with plain Errors (code Z_DATA_ERROR, Z_BUF_ERROR…).
  return new ArchiveError(`could not decompress "${path}": ${(error as Error).message}`, { cause: error });
}
