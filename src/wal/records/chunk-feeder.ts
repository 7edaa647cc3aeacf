/**
 * Feeds a WalRecordReader from byte chunks of any size and alignment, as WAL arrives from the
 * server: whole pages inside a chunk go to the reader without a copy, and a page cut by the end of
 * a chunk is carried (copied) until the next chunk completes it. A chunk that does not continue
 * where the last one ended starts afresh; bytes before the first page boundary of a fresh start
 * cannot be read (their page header is missing) and are skipped.
 */
import type { Lsn } from "../../lsn.js";
import { WAL_BLOCK_SIZE } from "../page-header.js";
import type { WalReadStop } from "./record-problem.js";
import type { WalRecordReader } from "./record-reader.js";

const PAGE = BigInt(WAL_BLOCK_SIZE);

export class WalChunkFeeder {
  private readonly carry = Buffer.alloc(WAL_BLOCK_SIZE);
  private carried = 0;
  /** LSN just after the last byte pushed, or -1n before the first push. */
  private end = -1n;

  constructor(private readonly reader: WalRecordReader) {}

  /** Reads the whole pages that `chunk` (WAL starting at `lsn`) completes; returns the first stop, if any. */
  push(chunk: Uint8Array, lsn: Lsn): WalReadStop | undefined {
    let bytes = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (lsn !== this.end) {
      this.carried = 0;
      const intoPage = Number(lsn % PAGE);
      if (intoPage !== 0) {
        const skip = Math.min(WAL_BLOCK_SIZE - intoPage, bytes.length);
        bytes = bytes.subarray(skip);
        lsn += BigInt(skip);
      }
    }
    this.end = lsn + BigInt(bytes.length);
    // After a stop the reader skips to the next segment by itself: the rest is still fed, in order.
    let stop: WalReadStop | undefined;
    if (this.carried > 0) {
      const take = Math.min(WAL_BLOCK_SIZE - this.carried, bytes.length);
      bytes.copy(this.carry, this.carried, 0, take);
      this.carried += take;
      bytes = bytes.subarray(take);
      lsn += BigInt(take);
      if (this.carried < WAL_BLOCK_SIZE) return undefined;
      this.carried = 0;
      stop = this.reader.feed(this.carry, lsn - PAGE);
    }
    const whole = bytes.length - (bytes.length % WAL_BLOCK_SIZE);
    if (whole > 0) {
      const later = this.reader.feed(bytes.subarray(0, whole), lsn);
      stop ??= later;
    }
    if (whole < bytes.length) {
      bytes.copy(this.carry, 0, whole);
      this.carried = bytes.length - whole;
    }
    return stop;
  }
}
