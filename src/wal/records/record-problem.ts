/**
 * What the record reader can find wrong, each named by the LSN it is about: the start of the
 * record (for a record's own faults) or of the page (for a page header's).
 */
import { formatLsn, type Lsn } from "../../lsn.js";

export type WalRecordProblemKind =
  /** The record's CRC-32C does not match its content. */
  | "crc"
  /** xl_prev does not point at the record before. */
  | "prev-link"
  /** xl_tot_len is impossible (shorter than a record header, or beyond what a server writes). */
  | "length"
  /** A page header that cannot be where it is (magic, address, flags, timeline, sizes). */
  | "page"
  /** A record's continuation onto the next page is missing or has the wrong length. */
  | "contrecord"
  /** A record whose CRC is right but whose content does not decode (block headers, main data). */
  | "content"
  /** Bytes after an XLOG_SWITCH record that should be zero are not. */
  | "switch-tail";

export interface WalRecordProblem {
  kind: WalRecordProblemKind;
  lsn: Lsn;
  message: string;
}

/** Why the reader stopped: a problem, or no more WAL (zero bytes where a record or page should begin). */
export type WalReadStop = { kind: "problem"; problem: WalRecordProblem } | { kind: "end-of-wal"; lsn: Lsn };

export function walRecordProblem(kind: WalRecordProblemKind, lsn: Lsn, detail: string): WalReadStop {
  return { kind: "problem", problem: { kind, lsn, message: `${detail} at ${formatLsn(lsn)}` } };
}
