/**
 * Checks of each page header as the record reader meets it (PostgreSQL's
 * XLogReaderValidatePageHeader): known magic, the same for the whole stream, only known flags,
 * the page address matching the position, a long header exactly at segment starts with this
 * stream's segment size and system identifier, and timelines that never go back. Only 8 KiB WAL
 * pages are supported: another xlp_xlog_blcksz is refused with an ArchiveError, not reported as
 * damage, because nothing about the WAL is wrong, pgwal just cannot read it.
 */
import { ArchiveError } from "../../errors.js";
import { formatLsn } from "../../lsn.js";
import {
  KNOWN_XLOG_PAGE_MAGIC,
  LONG_PAGE_HEADER_SIZE,
  parseWalPageHeader,
  SHORT_PAGE_HEADER_SIZE,
  WAL_BLOCK_SIZE,
} from "../page-header.js";
import { XLP_ALL_FLAGS, XLP_LONG_HEADER } from "./record-format.js";

export interface PageStreamIdentity {
  magic?: number;
  systemIdentifier?: bigint;
  timeline: number;
}

/** The PostgreSQL major whose XLOG_PAGE_MAGIC this is (13–18 are the ones pgwal reads records of). */
export function majorOfMagic(magic: number): number | undefined {
  const name = KNOWN_XLOG_PAGE_MAGIC.get(magic);
  return name === undefined ? undefined : Number(name);
}

/** True when the first 24 bytes are zero: no page was written here (yet). */
export function isZeroPageHeader(bytes: Buffer, at: number): boolean {
  for (let i = at; i < at + SHORT_PAGE_HEADER_SIZE; i += 4) if (bytes.readUInt32LE(i) !== 0) return false;
  return true;
}

/**
 * Validates the page header at bytes[at] for a page at `pageLsn` (a number: exact below 2^53) and
 * returns its size, or a text describing what is wrong. `identity` is updated with what the
 * stream's first long header says.
 */
export function checkPageHeader(
  bytes: Buffer,
  at: number,
  pageLsn: number,
  segmentSize: number,
  identity: PageStreamIdentity,
): number | string {
  const magic = bytes.readUInt16LE(at);
  const info = bytes.readUInt16LE(at + 2);
  const timeline = bytes.readUInt32LE(at + 4);
  const address = bytes.readUInt32LE(at + 12) * 0x1_0000_0000 + bytes.readUInt32LE(at + 8);
  if (magic !== identity.magic) {
    if (identity.magic !== undefined) {
      return `page magic 0x${magic.toString(16)} differs from 0x${identity.magic.toString(16)}`;
    }
    const major = majorOfMagic(magic);
    if (major === undefined || major < 13)
      return `unknown or unsupported WAL page magic 0x${magic.toString(16)}`;
    identity.magic = magic;
  }
  if ((info & ~XLP_ALL_FLAGS) !== 0) return `invalid page info bits 0x${info.toString(16)}`;
  if (address !== pageLsn) return `page address ${formatLsn(BigInt(address))} on the page at`;
  const segmentStart = pageLsn % segmentSize === 0;
  if (segmentStart !== ((info & XLP_LONG_HEADER) !== 0)) {
    return segmentStart ? "no long page header at a segment start" : "unexpected long page header";
  }
  if (timeline < identity.timeline) return `timeline ${timeline} after timeline ${identity.timeline}`;
  identity.timeline = timeline;
  if (!segmentStart) return SHORT_PAGE_HEADER_SIZE;
  const long = parseWalPageHeader(bytes.subarray(at, at + LONG_PAGE_HEADER_SIZE)).long!;
  if (long.blockSize !== WAL_BLOCK_SIZE) {
    throw new ArchiveError(
      `WAL page size ${long.blockSize} at ${formatLsn(BigInt(pageLsn))}: only ${WAL_BLOCK_SIZE}-byte WAL pages can be read`,
    );
  }
  if (long.segmentSize !== segmentSize) return `segment size ${long.segmentSize}, expected ${segmentSize}`;
  if (identity.systemIdentifier === undefined) identity.systemIdentifier = long.systemIdentifier;
  else if (long.systemIdentifier !== identity.systemIdentifier) {
    return `system identifier ${long.systemIdentifier} differs from ${identity.systemIdentifier} (WAL of another cluster)`;
  }
  return LONG_PAGE_HEADER_SIZE;
}
