/**
 * The few records whose content pgwal reads: transaction ends with their times, restore points,
 * checkpoints, backup ends and WAL switches. Everything else is only checked (CRC, length, chain).
 *
 * Main-data layouts: xl_xact_commit / xl_xact_abort start with TimestampTz xact_time (xact.h);
 * xl_restore_point is TimestampTz rp_time + char rp_name[64] (xlog_internal.h); CheckPoint starts
 * with XLogRecPtr redo and has pg_time_t time at offset 64 in 13–18 (pg_control.h: fields between
 * were renamed or added in padding, never moved); XLOG_BACKUP_END holds the backup's start LSN.
 */
import type { Lsn } from "../../lsn.js";
import { findMainData } from "./block-references.js";
import { preparedXidOf } from "./prepared-xid.js";
import {
  RECORD_INFO_OFFSET,
  RECORD_RMID_OFFSET,
  RECORD_XID_OFFSET,
  RM_XACT_ID,
  RM_XLOG_ID,
  XLOG_BACKUP_END,
  XLOG_CHECKPOINT_ONLINE,
  XLOG_CHECKPOINT_SHUTDOWN,
  XLOG_RESTORE_POINT,
  XLOG_SWITCH,
  XLOG_XACT_ABORT,
  XLOG_XACT_ABORT_PREPARED,
  XLOG_XACT_COMMIT,
  XLOG_XACT_COMMIT_PREPARED,
  XLOG_XACT_OPMASK,
  XLR_RMGR_INFO_MASK,
} from "./record-format.js";

const CHECKPOINT_TIME_OFFSET = 64;
const CHECKPOINT_MIN_SIZE = CHECKPOINT_TIME_OFFSET + 8;
const RESTORE_POINT_NAME_SIZE = 64;

export type TransactionEndKind = "commit" | "abort" | "commit-prepared" | "abort-prepared";

export type WalRecordEvent =
  | {
      kind: TransactionEndKind;
      lsn: Lsn;
      /**
       * The transaction that ended: xl_xid, or for the *-prepared kinds the prepared transaction's
       * xid from the record's two-phase part (0 when the record carries none).
       */
      xid: number;
      /** xact_time: microseconds since 2000-01-01 00:00 UTC. */
      time: bigint;
    }
  | { kind: "restore-point"; lsn: Lsn; time: bigint; name: string }
  | {
      kind: "checkpoint";
      lsn: Lsn;
      shutdown: boolean;
      redo: Lsn;
      /** pg_time_t: seconds since 1970-01-01 00:00 UTC. */
      time: bigint;
    }
  | { kind: "backup-end"; lsn: Lsn; backupStart: Lsn }
  | { kind: "switch"; lsn: Lsn };

const TRANSACTION_ENDS: ReadonlyMap<number, TransactionEndKind> = new Map([
  [XLOG_XACT_COMMIT, "commit"],
  [XLOG_XACT_ABORT, "abort"],
  [XLOG_XACT_COMMIT_PREPARED, "commit-prepared"],
  [XLOG_XACT_ABORT_PREPARED, "abort-prepared"],
]);

/** Whether the record with this rmid/xl_info is one decodeRecordEvent reads (so its bytes must be kept). */
export function isEventRecord(rmid: number, info: number): boolean {
  if (rmid === RM_XACT_ID) return TRANSACTION_ENDS.has(info & XLOG_XACT_OPMASK);
  if (rmid !== RM_XLOG_ID) return false;
  const op = info & XLR_RMGR_INFO_MASK;
  return (
    op === XLOG_CHECKPOINT_SHUTDOWN ||
    op === XLOG_CHECKPOINT_ONLINE ||
    op === XLOG_RESTORE_POINT ||
    op === XLOG_BACKUP_END ||
    op === XLOG_SWITCH
  );
}

/**
 * Decodes a whole record (header included, CRC already checked) that isEventRecord selected.
 * Returns a text describing what is wrong when its content does not fit its kind.
 */
export function decodeRecordEvent(record: Buffer, lsn: Lsn, major: number): WalRecordEvent | string {
  const rmid = record[RECORD_RMID_OFFSET]!;
  const info = record[RECORD_INFO_OFFSET]!;
  if (rmid === RM_XLOG_ID && (info & XLR_RMGR_INFO_MASK) === XLOG_SWITCH) return { kind: "switch", lsn };
  const main = findMainData(record, major);
  if (typeof main === "string") return main;
  const data = record.subarray(main.offset, main.offset + main.length);
  const tooShort = (name: string, size: number): string =>
    `${name} main data is ${data.length} bytes, expected at least ${size}`;
  if (rmid === RM_XACT_ID) {
    const kind = TRANSACTION_ENDS.get(info & XLOG_XACT_OPMASK)!;
    if (data.length < 8) return tooShort(kind, 8);
    const prepared = kind === "commit-prepared" || kind === "abort-prepared";
    const xid = prepared
      ? (preparedXidOf(data, info, kind === "commit-prepared", major) ?? 0)
      : record.readUInt32LE(RECORD_XID_OFFSET);
    return { kind, lsn, xid, time: data.readBigInt64LE(0) };
  }
  const op = info & XLR_RMGR_INFO_MASK;
  if (op === XLOG_RESTORE_POINT) {
    if (data.length < 8 + RESTORE_POINT_NAME_SIZE)
      return tooShort("restore point", 8 + RESTORE_POINT_NAME_SIZE);
    const nameBytes = data.subarray(8, 8 + RESTORE_POINT_NAME_SIZE);
    const end = nameBytes.indexOf(0);
    const name = nameBytes.subarray(0, end < 0 ? RESTORE_POINT_NAME_SIZE : end).toString("utf8");
    return { kind: "restore-point", lsn, time: data.readBigInt64LE(0), name };
  }
  if (op === XLOG_BACKUP_END) {
    if (data.length < 8) return tooShort("backup end", 8);
    return { kind: "backup-end", lsn, backupStart: data.readBigUInt64LE(0) };
  }
  if (data.length < CHECKPOINT_MIN_SIZE) return tooShort("checkpoint", CHECKPOINT_MIN_SIZE);
  return {
    kind: "checkpoint",
    lsn,
    shutdown: op === XLOG_CHECKPOINT_SHUTDOWN,
    redo: data.readBigUInt64LE(0),
    time: data.readBigInt64LE(CHECKPOINT_TIME_OFFSET),
  };
}
