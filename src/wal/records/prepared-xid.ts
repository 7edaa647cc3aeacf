/**
 * The prepared transaction's xid in a COMMIT PREPARED / ABORT PREPARED record (xact.h,
 * ParseCommitRecord / ParseAbortRecord): after xact_time, when xl_info has XLOG_XACT_HAS_INFO, an
 * xinfo word says which parts follow, in this order: database info, subtransactions, dropped
 * relation files, dropped statistics (15+), invalidations (commit only), then the two-phase xid.
 */
const XLOG_XACT_HAS_INFO = 0x80;
const XACT_XINFO_HAS_DBINFO = 1 << 0;
const XACT_XINFO_HAS_SUBXACTS = 1 << 1;
const XACT_XINFO_HAS_RELFILENODES = 1 << 2;
const XACT_XINFO_HAS_INVALS = 1 << 3;
const XACT_XINFO_HAS_TWOPHASE = 1 << 4;
const XACT_XINFO_HAS_DROPPED_STATS = 1 << 8;

const DBINFO_SIZE = 8;
const XID_SIZE = 4;
const REL_FILE_LOCATOR_SIZE = 12;
const INVALIDATION_MESSAGE_SIZE = 16;

/** xl_xact_stats_item: kind, dboid, objoid in 15–17; kind, dboid and a 64-bit object id from 18. */
function statsItemSize(major: number): number {
  return major >= 18 ? 16 : 12;
}

/**
 * The two-phase xid of a transaction-end record's main data (`data` starts at xact_time), or
 * undefined when the record has none or its parts run past the data.
 */
export function preparedXidOf(
  data: Buffer,
  info: number,
  isCommit: boolean,
  major: number,
): number | undefined {
  if (!(info & XLOG_XACT_HAS_INFO) || data.length < 12) return undefined;
  const xinfo = data.readUInt32LE(8);
  let at = 12;
  const counted = (itemSize: number): boolean => {
    if (at + 4 > data.length) return false;
    at += 4 + data.readInt32LE(at) * itemSize;
    return at <= data.length;
  };
  if (xinfo & XACT_XINFO_HAS_DBINFO) at += DBINFO_SIZE;
  if (xinfo & XACT_XINFO_HAS_SUBXACTS && !counted(XID_SIZE)) return undefined;
  if (xinfo & XACT_XINFO_HAS_RELFILENODES && !counted(REL_FILE_LOCATOR_SIZE)) return undefined;
  if (major >= 15 && xinfo & XACT_XINFO_HAS_DROPPED_STATS && !counted(statsItemSize(major))) return undefined;
  if (isCommit && xinfo & XACT_XINFO_HAS_INVALS && !counted(INVALIDATION_MESSAGE_SIZE)) return undefined;
  if (!(xinfo & XACT_XINFO_HAS_TWOPHASE) || at + XID_SIZE > data.length) return undefined;
  return data.readUInt32LE(at);
}
