/**
 * Layout of WAL records (PostgreSQL's xlogrecord.h, xlog_internal.h, rmgrlist.h), the same in
 * PostgreSQL 13 to 18 unless noted. Little-endian, as everywhere in pgwal.
 *
 * XLogRecord (SizeOfXLogRecord = 24): xl_tot_len u32 @0, xl_xid u32 @4, xl_prev u64 @8,
 * xl_info u8 @16, xl_rmid u8 @17, 2 bytes padding, xl_crc u32 @20.
 */
export const RECORD_HEADER_SIZE = 24;
export const RECORD_TOT_LEN_OFFSET = 0;
export const RECORD_XID_OFFSET = 4;
export const RECORD_PREV_OFFSET = 8;
export const RECORD_INFO_OFFSET = 16;
export const RECORD_RMID_OFFSET = 17;
export const RECORD_CRC_OFFSET = 20;

/** Records start at MAXALIGN (8-byte) positions. */
export const MAXIMUM_ALIGNOF = 8;

export function maxAlign(value: number): number {
  return (value + MAXIMUM_ALIGNOF - 1) & ~(MAXIMUM_ALIGNOF - 1);
}

/** Page header flags (xlp_info). */
export const XLP_FIRST_IS_CONTRECORD = 0x0001;
export const XLP_LONG_HEADER = 0x0002;
export const XLP_BKP_REMOVABLE = 0x0004;
export const XLP_FIRST_IS_OVERWRITE_CONTRECORD = 0x0008;
export const XLP_ALL_FLAGS = 0x000f;

/** MaxAllocSize: no server version writes or reads a record longer than this. */
export const MAX_RECORD_LENGTH = 0x3fffffff;

/** xl_info: the low four bits belong to the WAL machinery, the high four to the resource manager. */
export const XLR_INFO_MASK = 0x0f;
export const XLR_RMGR_INFO_MASK = 0xf0;

/** Resource manager ids (rmgrlist.h): RM_XLOG_ID and RM_XACT_ID have kept their numbers. */
export const RM_XLOG_ID = 0;
export const RM_XACT_ID = 1;
/** Built-in ids end before this in every version; 128-255 are custom resource managers (15+). */
export const RM_MIN_CUSTOM_ID = 128;

/** XLOG resource manager records (pg_control.h). */
export const XLOG_CHECKPOINT_SHUTDOWN = 0x00;
export const XLOG_CHECKPOINT_ONLINE = 0x10;
export const XLOG_SWITCH = 0x40;
export const XLOG_BACKUP_END = 0x50;
export const XLOG_RESTORE_POINT = 0x70;

/** Transaction records (xact.h): the operation is in XLOG_XACT_OPMASK of xl_info. */
export const XLOG_XACT_OPMASK = 0x70;
export const XLOG_XACT_COMMIT = 0x00;
export const XLOG_XACT_ABORT = 0x20;
export const XLOG_XACT_COMMIT_PREPARED = 0x30;
export const XLOG_XACT_ABORT_PREPARED = 0x40;

/** Block reference ids (xlogrecord.h). */
export const XLR_MAX_BLOCK_ID = 32;
export const XLR_BLOCK_ID_DATA_SHORT = 255;
export const XLR_BLOCK_ID_DATA_LONG = 254;
export const XLR_BLOCK_ID_ORIGIN = 253;
/** PostgreSQL 14+. */
export const XLR_BLOCK_ID_TOPLEVEL_XID = 252;

/** XLogRecordBlockHeader.fork_flags. */
export const BKPBLOCK_HAS_IMAGE = 0x10;
export const BKPBLOCK_HAS_DATA = 0x20;
export const BKPBLOCK_SAME_REL = 0x80;

/** XLogRecordBlockImageHeader.bimg_info. */
export const BKPIMAGE_HAS_HOLE = 0x01;
/** Up to PostgreSQL 14: one "compressed" bit (pglz). */
export const BKPIMAGE_IS_COMPRESSED_UNTIL_14 = 0x02;
/** PostgreSQL 15+: one bit per method (pglz, lz4, zstd). */
export const BKPIMAGE_COMPRESSED_SINCE_15 = 0x04 | 0x08 | 0x10;

/** PostgreSQL timestamps count microseconds from 2000-01-01 00:00:00 UTC. */
export const POSTGRES_EPOCH_UNIX_MS = 946_684_800_000;

/** A TimestampTz (microseconds since 2000-01-01 UTC) as an ISO 8601 text with microseconds. */
export function formatTimestampTz(microseconds: bigint): string {
  const unixMicros = microseconds + BigInt(POSTGRES_EPOCH_UNIX_MS) * 1000n;
  const millis = unixMicros / 1000n - (unixMicros % 1000n < 0n ? 1n : 0n);
  const micro = Number(unixMicros - millis * 1000n);
  const iso = new Date(Number(millis)).toISOString(); // 2026-11-29T15:55:30.123Z
  return `${iso.slice(0, -1)}${String(micro).padStart(3, "0")}Z`;
}
