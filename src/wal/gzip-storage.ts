/**
 * gzip segments (`-Z gzip[:N]`): one zlib gzip stream per segment file, so that `gunzip` reads it
 * and its ISIZE trailer tells the uncompressed size (what the archive scan checks).
 */
import { createGzip, constants as zlibConstants } from "node:zlib";
import { CompressedWalStorage } from "./compressed-storage.js";
import type { ResolvedStorageOptions, WalStorage } from "./storage.js";
import { ZlibSegmentEncoder } from "./zlib-segment-encoder.js";

export class GzipSegmentEncoder extends ZlibSegmentEncoder {
  constructor(level: number | undefined, emit: (output: Uint8Array) => void) {
    super(
      createGzip({ level: level ?? zlibConstants.Z_DEFAULT_COMPRESSION }),
      zlibConstants.Z_SYNC_FLUSH,
      emit,
    );
  }
}

export function createGzipWalStorage(options: ResolvedStorageOptions, level: number | undefined): WalStorage {
  return new CompressedWalStorage(options, "gzip", (emit) => new GzipSegmentEncoder(level, emit));
}
