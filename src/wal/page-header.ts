/**
 * WAL page headers (XLogPageHeaderData / XLogLongPageHeaderData). The first page of every segment
 * has the long form, which carries the cluster's system identifier: that is how pgwal refuses to
 * mix WAL of two clusters in one archive. PostgreSQL writes these fields in the server's native
 * byte order; little-endian is assumed (every platform pgwal targets).
 *
 * Layout: magic u16 @0, info u16 @2, timeline u32 @4, page address u64 @8, remaining length
 * u32 @16, padding to 24; long form adds system identifier u64 @24, segment size u32 @32,
 * block size u32 @36 (40 bytes).
 */
import * as fsp from "node:fs/promises";
import { ArchiveError } from "../errors.js";
import type { Lsn } from "../lsn.js";
import { readDecompressed } from "./compression.js";
import { storageCall } from "./fsync.js";

export const XLP_FIRST_IS_CONTRECORD = 0x0001;
export const XLP_LONG_HEADER = 0x0002;
export const WAL_BLOCK_SIZE = 8192;
export const SHORT_PAGE_HEADER_SIZE = 24;
export const LONG_PAGE_HEADER_SIZE = 40;

/** XLOG_PAGE_MAGIC of each major version (it changes whenever the WAL format does). */
export const KNOWN_XLOG_PAGE_MAGIC: ReadonlyMap<number, string> = new Map([
  [0xd097, "10"],
  [0xd098, "11"],
  [0xd101, "12"],
  [0xd106, "13"],
  [0xd10d, "14"],
  [0xd110, "15"],
  [0xd113, "16"],
  [0xd116, "17"],
  [0xd118, "18"],
]);

export interface WalPageHeader {
  magic: number;
  info: number;
  timeline: number;
  pageAddress: Lsn;
  remLen: number;
  long?: { systemIdentifier: bigint; segmentSize: number; blockSize: number };
}

export function parseWalPageHeader(page: Buffer): WalPageHeader {
  if (page.byteLength < SHORT_PAGE_HEADER_SIZE) {
    throw new ArchiveError(`WAL page header needs ${SHORT_PAGE_HEADER_SIZE} bytes, got ${page.byteLength}`);
  }
  const header: WalPageHeader = {
    magic: page.readUInt16LE(0),
    info: page.readUInt16LE(2),
    timeline: page.readUInt32LE(4),
    pageAddress: page.readBigUInt64LE(8),
    remLen: page.readUInt32LE(16),
  };
  if (header.info & XLP_LONG_HEADER) {
    if (page.byteLength < LONG_PAGE_HEADER_SIZE) {
      throw new ArchiveError(
        `long WAL page header needs ${LONG_PAGE_HEADER_SIZE} bytes, got ${page.byteLength}`,
      );
    }
    header.long = {
      systemIdentifier: page.readBigUInt64LE(24),
      segmentSize: page.readUInt32LE(32),
      blockSize: page.readUInt32LE(36),
    };
  }
  return header;
}

/**
 * The system identifier in the first page of an archive file (plain or compressed, partial or
 * not), or undefined when there is nothing to check yet: the first page is all zeros (a freshly
 * pre-padded .partial) or the file holds fewer bytes than a long page header (a compressed
 * .partial that has just been created).
 */
export async function readSystemIdentifier(path: string): Promise<bigint | undefined> {
  await storageCall("open", path, () => fsp.access(path));
  const prefix = (await readDecompressed(path, LONG_PAGE_HEADER_SIZE, { allowTruncated: true })).subarray(
    0,
    LONG_PAGE_HEADER_SIZE,
  );
  if (prefix.byteLength < LONG_PAGE_HEADER_SIZE || prefix.every((byte) => byte === 0)) return undefined;
  const header = parseWalPageHeader(prefix);
  if (!header.long) {
    throw new ArchiveError(
      `WAL file "${path}" does not start with a long page header (info 0x${header.info.toString(16)})`,
    );
  }
  return header.long.systemIdentifier;
}
