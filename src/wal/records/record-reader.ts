/**
 * Walks the records of a WAL stream, page by page, the way PostgreSQL's xlogreader does, and
 * checks each one: xl_tot_len, the xl_prev link to the record before, and the CRC-32C
 * (ValidXLogRecord: over the data after the header, then the header up to xl_crc). Records may
 * span pages and segments (XLP_FIRST_IS_CONTRECORD, xlp_rem_len); they start at MAXALIGN
 * positions; after an XLOG_SWITCH record the rest of the segment is zeros (pages the server never
 * wrote, or written with nothing but a page header).
 *
 * Pure and incremental: feed() takes whole pages in stream order, any number at a time; the state
 * of a record that continues past them (its header, running CRC, and its bytes only when its
 * content is decoded) is kept, so a record crossing a segment boundary is checked when the next
 * segment is fed. A new reader, or one that stopped, starts at the first record that begins in the
 * next page it is given (skipping the continuation of a record begun earlier, as
 * XLogFindNextRecord does); after a stop it skips to the next segment start first.
 *
 * LSNs are kept as numbers inside (exact below 2^53, i.e. 8 PiB of WAL) for speed; the API speaks Lsn.
 */
import { ArchiveError } from "../../errors.js";
import { formatLsn, type Lsn } from "../../lsn.js";
import { WAL_BLOCK_SIZE } from "../page-header.js";
import { CRC32C_INIT, finishCrc32c, updateCrc32c } from "./crc32c.js";
import {
  checkPageHeader,
  isZeroPageHeader,
  majorOfMagic,
  type PageStreamIdentity,
} from "./page-validation.js";
import { decodeRecordEvent, isEventRecord, type WalRecordEvent } from "./record-events.js";
import {
  MAX_RECORD_LENGTH,
  maxAlign,
  RECORD_CRC_OFFSET,
  RECORD_HEADER_SIZE,
  RECORD_INFO_OFFSET,
  RECORD_PREV_OFFSET,
  RECORD_RMID_OFFSET,
  RM_XLOG_ID,
  XLOG_SWITCH,
  XLP_FIRST_IS_CONTRECORD,
  XLP_FIRST_IS_OVERWRITE_CONTRECORD,
  XLR_RMGR_INFO_MASK,
} from "./record-format.js";
import { type WalReadStop, walRecordProblem } from "./record-problem.js";

export interface WalRecordReaderOptions {
  /** Bytes per segment (the stream's long page headers must say the same). */
  segmentSize: number;
  /** Called for each transaction end, restore point, checkpoint, backup end and switch. */
  onEvent?: (event: WalRecordEvent) => void;
  /** Called for every record whose checks passed (costly for big streams: tests and tools). */
  onRecord?: (record: { lsn: Lsn; totalLength: number; rmid: number; info: number }) => void;
}

type Mode =
  /** Looking for the first record that begins on the next page. */
  | "seek"
  /** After a stop: nothing is read until the next segment start. */
  | "skip-segment"
  /** The next record begins at `nextLsn`. */
  | "record"
  /** Inside a record that continues on the next page. */
  | "continuation"
  /** After XLOG_SWITCH: zeros until the next segment. */
  | "switch-tail";

const TWO_POW_32 = 0x1_0000_0000;
const ZERO_PAGE = Buffer.alloc(WAL_BLOCK_SIZE);

export class WalRecordReader {
  private readonly segmentSize: number;
  private readonly onEvent?: WalRecordReaderOptions["onEvent"];
  private readonly onRecord?: WalRecordReaderOptions["onRecord"];
  private readonly identity: PageStreamIdentity = { timeline: 0 };
  private mode: Mode = "seek";
  /** Next page expected (stream order check), or -1 before the first. */
  private expectedPage = -1;
  private nextLsn = 0;
  /** Start of the last record read, or -1 when unknown (after a seek). */
  private previousLsn = -1;
  // The record being assembled across pages.
  private readonly header = Buffer.alloc(RECORD_HEADER_SIZE);
  private recordLsn = 0;
  private recordLength = 0;
  private recordGot = 0;
  private recordCrc = 0;
  private recordBytes: Buffer | undefined;
  /** Records checked so far. */
  records = 0;

  constructor(options: WalRecordReaderOptions) {
    this.segmentSize = options.segmentSize;
    this.onEvent = options.onEvent;
    this.onRecord = options.onRecord;
  }

  /** The major version of the WAL read so far (from the page magic), once a page was read. */
  get major(): number | undefined {
    return this.identity.magic === undefined ? undefined : majorOfMagic(this.identity.magic);
  }

  /** Where the next record begins, when the reader is between records. */
  get nextRecordLsn(): Lsn | undefined {
    return this.mode === "record" ? BigInt(this.nextLsn) : undefined;
  }

  /**
   * Reads whole pages starting at `startLsn` (a page boundary). Returns undefined when all were
   * read, or why it stopped: the rest of `pages` is then not read, and the reader continues at
   * the first record of the next segment.
   */
  feed(pages: Buffer, startLsn: Lsn): WalReadStop | undefined {
    if (pages.length % WAL_BLOCK_SIZE !== 0) {
      throw new ArchiveError(`WAL record reader: ${pages.length} bytes is not a whole number of pages`);
    }
    if (startLsn % BigInt(WAL_BLOCK_SIZE) !== 0n || startLsn >= 2n ** 53n) {
      throw new ArchiveError(`WAL record reader: cannot start at ${formatLsn(startLsn)}`);
    }
    let pageLsn = Number(startLsn);
    if (this.expectedPage >= 0 && pageLsn !== this.expectedPage) this.restart();
    for (let at = 0; at < pages.length; at += WAL_BLOCK_SIZE, pageLsn += WAL_BLOCK_SIZE) {
      this.expectedPage = pageLsn + WAL_BLOCK_SIZE;
      const stop = this.readPage(pages, at, pageLsn);
      if (stop !== undefined) {
        this.mode = "skip-segment";
        this.recordBytes = undefined;
        return stop;
      }
    }
    return undefined;
  }

  /** Forgets the record in progress and the chain: the next page fed is read as a fresh start. */
  restart(): void {
    this.mode = "seek";
    this.previousLsn = -1;
    this.recordBytes = undefined;
  }

  private readPage(bytes: Buffer, at: number, pageLsn: number): WalReadStop | undefined {
    const segmentStart = pageLsn % this.segmentSize === 0;
    if (this.mode === "skip-segment") {
      if (!segmentStart) return undefined;
      this.restart();
    }
    if (isZeroPageHeader(bytes, at)) {
      // The server does not write the pages after an XLOG_SWITCH: they stay zero, headers included.
      if (this.mode === "switch-tail" && !segmentStart) {
        return this.checkZeros(bytes, at, at + WAL_BLOCK_SIZE, pageLsn - at);
      }
      return { kind: "end-of-wal", lsn: BigInt(pageLsn) };
    }
    const headerSize = checkPageHeader(bytes, at, pageLsn, this.segmentSize, this.identity);
    if (typeof headerSize === "string") return walRecordProblem("page", BigInt(pageLsn), headerSize);
    const info = bytes.readUInt16LE(at + 2);
    const remaining = bytes.readUInt32LE(at + 16);
    const pageEnd = at + WAL_BLOCK_SIZE;
    let position = at + headerSize;

    if (this.mode === "switch-tail") {
      if (!segmentStart) return this.checkZeros(bytes, position, pageEnd, pageLsn - at);
      this.mode = "record";
      this.nextLsn = pageLsn;
    } else if (this.mode === "seek") {
      this.previousLsn = -1;
      if (info & XLP_FIRST_IS_CONTRECORD) {
        const skip = maxAlign(remaining);
        if (skip >= WAL_BLOCK_SIZE - headerSize) return undefined;
        position += skip;
      }
      this.mode = "record";
      this.nextLsn = pageLsn + (position - at);
    } else if (this.mode === "continuation") {
      if (!(info & XLP_FIRST_IS_CONTRECORD)) {
        if (!(info & XLP_FIRST_IS_OVERWRITE_CONTRECORD)) {
          return walRecordProblem(
            "contrecord",
            BigInt(this.recordLsn),
            `record continues onto ${formatLsn(BigInt(pageLsn))}, whose page has no continuation flag; record`,
          );
        }
        // The server crashed inside this record and wrote past it: the record never existed.
        this.recordBytes = undefined;
        this.mode = "record";
        this.nextLsn = pageLsn + headerSize;
      } else {
        const left = this.recordLength - this.recordGot;
        if (remaining !== left) {
          return walRecordProblem(
            "contrecord",
            BigInt(this.recordLsn),
            `page ${formatLsn(BigInt(pageLsn))} continues ${remaining} bytes of a record with ${left} left; record`,
          );
        }
        const end = position + Math.min(left, pageEnd - position);
        const stop = this.continueRecord(bytes, position, end);
        if (stop !== undefined || this.mode === "continuation") return stop;
        position = at + maxAlign(end - at);
        if (this.mode === "switch-tail") return this.checkZeros(bytes, position, pageEnd, pageLsn - at);
        this.nextLsn = pageLsn + (position - at);
      }
    }
    if (this.nextLsn === pageLsn) {
      if (info & XLP_FIRST_IS_CONTRECORD) {
        return walRecordProblem(
          "contrecord",
          BigInt(pageLsn),
          "a record should begin on the page, but it says it continues one, at",
        );
      }
      this.nextLsn = pageLsn + headerSize;
    }
    if (this.nextLsn < pageLsn + headerSize || this.nextLsn > pageLsn + WAL_BLOCK_SIZE) {
      return walRecordProblem(
        "page",
        BigInt(pageLsn),
        `the next record should begin at ${formatLsn(BigInt(this.nextLsn))}, not on the page at`,
      );
    }
    position = at + (this.nextLsn - pageLsn);
    return this.readRecords(bytes, at, position, pageLsn);
  }

  /** Reads the records that begin on this page, from `position`. */
  private readRecords(bytes: Buffer, at: number, position: number, pageLsn: number): WalReadStop | undefined {
    const pageEnd = at + WAL_BLOCK_SIZE;
    while (position < pageEnd) {
      const lsn = pageLsn + (position - at);
      const length = bytes.readUInt32LE(position);
      if (length === 0) return { kind: "end-of-wal", lsn: BigInt(lsn) };
      if (length < RECORD_HEADER_SIZE || length > MAX_RECORD_LENGTH) {
        return walRecordProblem(
          "length",
          BigInt(lsn),
          `impossible record length ${length} (xl_tot_len) of the record`,
        );
      }
      const available = pageEnd - position;
      this.recordLsn = lsn;
      this.recordLength = length;
      if (available < RECORD_HEADER_SIZE) {
        // The header itself continues on the next page: the rest is checked when it is complete.
        bytes.copy(this.header, 0, position, pageEnd);
        this.recordGot = available;
        this.recordCrc = CRC32C_INIT;
        this.recordBytes = undefined;
        this.mode = "continuation";
        return undefined;
      }
      const headerStop = this.checkHeader(bytes, position);
      if (headerStop !== undefined) return headerStop;
      if (length > available) {
        bytes.copy(this.header, 0, position, position + RECORD_HEADER_SIZE);
        this.keepBytesIfEvent(bytes, position);
        this.recordGot = available;
        this.recordCrc = updateCrc32c(CRC32C_INIT, bytes, position + RECORD_HEADER_SIZE, pageEnd);
        if (this.recordBytes !== undefined) bytes.copy(this.recordBytes, 0, position, pageEnd);
        this.mode = "continuation";
        return undefined;
      }
      let crc = updateCrc32c(CRC32C_INIT, bytes, position + RECORD_HEADER_SIZE, position + length);
      crc = finishCrc32c(updateCrc32c(crc, bytes, position, position + RECORD_CRC_OFFSET));
      const stop = this.finishRecord(crc, bytes, position, bytes.subarray(position, position + length));
      if (stop !== undefined) return stop;
      position = at + maxAlign(position + length - at);
      if (this.mode === "switch-tail") return this.checkZeros(bytes, position, pageEnd, pageLsn - at);
    }
    this.nextLsn = pageLsn + WAL_BLOCK_SIZE;
    return undefined;
  }

  /**
   * ValidXLogRecordHeader, once the header is whole: the xl_prev link (xl_tot_len was checked
   * as soon as it was read).
   */
  private checkHeader(source: Buffer, at: number): WalReadStop | undefined {
    const previous =
      source.readUInt32LE(at + RECORD_PREV_OFFSET + 4) * TWO_POW_32 +
      source.readUInt32LE(at + RECORD_PREV_OFFSET);
    if (this.previousLsn >= 0 && previous !== this.previousLsn) {
      return walRecordProblem(
        "prev-link",
        BigInt(this.recordLsn),
        `xl_prev ${formatLsn(BigInt(previous))} does not point at the previous record ${formatLsn(BigInt(this.previousLsn))}: broken chain at the record`,
      );
    }
    return undefined;
  }

  /** A record that spans pages is copied only when its content is decoded. */
  private keepBytesIfEvent(source: Buffer, at: number): void {
    this.recordBytes =
      this.onEvent !== undefined &&
      isEventRecord(source[at + RECORD_RMID_OFFSET]!, source[at + RECORD_INFO_OFFSET]!)
        ? Buffer.allocUnsafe(this.recordLength)
        : undefined;
  }

  /** Adds bytes[start, end) of the current record (from a continuation page). */
  private continueRecord(bytes: Buffer, start: number, end: number): WalReadStop | undefined {
    if (this.recordGot < RECORD_HEADER_SIZE) {
      const take = Math.min(RECORD_HEADER_SIZE - this.recordGot, end - start);
      bytes.copy(this.header, this.recordGot, start, start + take);
      this.recordGot += take;
      start += take;
      if (this.recordGot < RECORD_HEADER_SIZE) return undefined;
      const stop = this.checkHeader(this.header, 0);
      if (stop !== undefined) return stop;
      this.keepBytesIfEvent(this.header, 0);
      if (this.recordBytes !== undefined) this.header.copy(this.recordBytes, 0);
    }
    if (start < end) {
      this.recordCrc = updateCrc32c(this.recordCrc, bytes, start, end);
      if (this.recordBytes !== undefined) bytes.copy(this.recordBytes, this.recordGot, start, end);
      this.recordGot += end - start;
    }
    if (this.recordGot < this.recordLength) return undefined;
    const crc = finishCrc32c(updateCrc32c(this.recordCrc, this.header, 0, RECORD_CRC_OFFSET));
    const stop = this.finishRecord(crc, this.header, 0, this.recordBytes);
    this.recordBytes = undefined;
    if (stop === undefined && this.mode === "continuation") this.mode = "record";
    return stop;
  }

  /** The record is whole: compares the CRC, then links, counts and decodes it. */
  private finishRecord(
    crc: number,
    headerBytes: Buffer,
    headerAt: number,
    content: Buffer | undefined,
  ): WalReadStop | undefined {
    const lsn = this.recordLsn;
    const stored = headerBytes.readUInt32LE(headerAt + RECORD_CRC_OFFSET);
    if (crc !== stored) {
      return walRecordProblem(
        "crc",
        BigInt(lsn),
        `CRC mismatch (stored 0x${stored.toString(16).padStart(8, "0")}, computed 0x${crc.toString(16).padStart(8, "0")}) in the record`,
      );
    }
    const rmid = headerBytes[headerAt + RECORD_RMID_OFFSET]!;
    const info = headerBytes[headerAt + RECORD_INFO_OFFSET]!;
    this.previousLsn = lsn;
    this.records++;
    this.onRecord?.({ lsn: BigInt(lsn), totalLength: this.recordLength, rmid, info });
    if (this.onEvent !== undefined && content !== undefined && isEventRecord(rmid, info)) {
      const event = decodeRecordEvent(content, BigInt(lsn), this.major ?? 0);
      if (typeof event === "string")
        return walRecordProblem("content", BigInt(lsn), `${event}, in the record`);
      this.onEvent(event);
    }
    if (rmid === RM_XLOG_ID && (info & XLR_RMGR_INFO_MASK) === XLOG_SWITCH) this.mode = "switch-tail";
    return undefined;
  }

  /** After XLOG_SWITCH nothing but zeros may follow in the segment (page headers aside). */
  private checkZeros(bytes: Buffer, start: number, end: number, bufferLsn: number): WalReadStop | undefined {
    if (ZERO_PAGE.compare(bytes, start, end, 0, end - start) === 0) return undefined;
    for (let i = start; i < end; i++) {
      if (bytes[i] !== 0) {
        return walRecordProblem(
          "switch-tail",
          BigInt(bufferLsn + i),
          "non-zero byte after an XLOG_SWITCH record",
        );
      }
    }
    return undefined;
  }
}
