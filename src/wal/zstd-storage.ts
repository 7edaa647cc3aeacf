/**
 * zstd segments (`-Z zstd[:N]`, a pgwal extension: pg_receivewal refuses zstd): one zstd frame
 * per segment file, `NAME.zst`, readable by the `zstd` tool. A sync point ends a zstd block
 * (ZSTD_e_flush), so everything flushed so far decodes from a `.zst.partial` as it stands.
 * Node.js has zstd in node:zlib from 22.15; `zstdAvailable` tells whether this one does.
 */
import * as zlib from "node:zlib";
import { CompressedWalStorage } from "./compressed-storage.js";
import type { ResolvedStorageOptions, WalStorage } from "./storage.js";
import { type ZlibCompressStream, ZlibSegmentEncoder } from "./zlib-segment-encoder.js";

/** zstd in node:zlib, when this Node.js has it. */
interface ZstdZlib {
  createZstdCompress(options: { params: Record<number, number> }): ZlibCompressStream;
  createZstdDecompress(options: { finishFlush?: number }): import("node:stream").Transform;
  constants: {
    ZSTD_e_flush: number;
    ZSTD_e_continue: number;
    ZSTD_c_compressionLevel: number;
    ZSTD_c_enableLongDistanceMatching: number;
  };
}

function zstdZlib(): ZstdZlib | undefined {
  const candidate = zlib as unknown as Partial<ZstdZlib>;
  return typeof candidate.createZstdCompress === "function" ? (candidate as ZstdZlib) : undefined;
}

export function zstdAvailable(): boolean {
  return zstdZlib() !== undefined;
}

/** The one line a user sees when this Node.js has no zstd. */
export function zstdUnavailableMessage(): string {
  return `compression with zstd needs Node.js 22.15 or later (this is Node.js ${process.version})`;
}

function requireZstd(): ZstdZlib {
  const found = zstdZlib();
  if (found === undefined) throw new Error(zstdUnavailableMessage());
  return found;
}

export interface ZstdSettings {
  level?: number;
  /** Long-distance matching (--compress=zstd:long). */
  long?: boolean;
}

export class ZstdSegmentEncoder extends ZlibSegmentEncoder {
  constructor(settings: ZstdSettings, emit: (output: Uint8Array) => void) {
    const z = requireZstd();
    const params: Record<number, number> = {};
    if (settings.level !== undefined) params[z.constants.ZSTD_c_compressionLevel] = settings.level;
    if (settings.long === true) params[z.constants.ZSTD_c_enableLongDistanceMatching] = 1;
    super(z.createZstdCompress({ params }), z.constants.ZSTD_e_flush, emit);
  }
}

/** A zstd decoder; `allowTruncated` accepts a stream that stops after a flushed block (a `.partial`). */
export function createZstdDecompressStream(allowTruncated: boolean): import("node:stream").Transform {
  const z = requireZstd();
  return z.createZstdDecompress(allowTruncated ? { finishFlush: z.constants.ZSTD_e_continue } : {});
}

export function createZstdWalStorage(options: ResolvedStorageOptions, settings: ZstdSettings): WalStorage {
  return new CompressedWalStorage(options, "zstd", (emit) => new ZstdSegmentEncoder(settings, emit));
}
