/**
 * Finding a record's main data: the headers after XLogRecord (block references, origin, top-level
 * xid, then the main-data length) say how many bytes of block images and block data come before
 * the main data, which is always last. This is the part of PostgreSQL's DecodeXLogRecord that a
 * reader of commit times needs; it also checks that the lengths add up to xl_tot_len.
 */
import {
  BKPBLOCK_HAS_IMAGE,
  BKPBLOCK_SAME_REL,
  BKPIMAGE_COMPRESSED_SINCE_15,
  BKPIMAGE_HAS_HOLE,
  BKPIMAGE_IS_COMPRESSED_UNTIL_14,
  RECORD_HEADER_SIZE,
  XLR_BLOCK_ID_DATA_LONG,
  XLR_BLOCK_ID_DATA_SHORT,
  XLR_BLOCK_ID_ORIGIN,
  XLR_BLOCK_ID_TOPLEVEL_XID,
  XLR_MAX_BLOCK_ID,
} from "./record-format.js";

/** Size of RelFileNode / RelFileLocator (three Oids), present unless BKPBLOCK_SAME_REL. */
const REL_FILE_LOCATOR_SIZE = 12;

export interface MainData {
  /** Offset of the main data in the record. */
  offset: number;
  length: number;
}

/**
 * Locates the main data of a whole record (header included). Returns a text describing what is
 * wrong when the headers do not describe the record, as DecodeXLogRecord would refuse it.
 * `major` chooses the meaning of the image compression bits (13–14 versus 15+).
 */
export function findMainData(record: Uint8Array, major: number): MainData | string {
  const view = Buffer.from(record.buffer, record.byteOffset, record.byteLength);
  const total = view.readUInt32LE(0);
  const compressedBits = major >= 15 ? BKPIMAGE_COMPRESSED_SINCE_15 : BKPIMAGE_IS_COMPRESSED_UNTIL_14;
  let at = RECORD_HEADER_SIZE;
  let payload = 0;
  let mainLength = 0;
  const need = (bytes: number): boolean => at + bytes <= total;
  while (total - at > payload) {
    if (!need(1)) return "block headers run past the record";
    const id = view[at++]!;
    if (id === XLR_BLOCK_ID_DATA_SHORT) {
      if (!need(1)) return "main data length runs past the record";
      mainLength = view[at++]!;
      break;
    }
    if (id === XLR_BLOCK_ID_DATA_LONG) {
      if (!need(4)) return "main data length runs past the record";
      mainLength = view.readUInt32LE(at);
      at += 4;
      break;
    }
    if (id === XLR_BLOCK_ID_ORIGIN) {
      at += 2;
      continue;
    }
    if (id === XLR_BLOCK_ID_TOPLEVEL_XID && major >= 14) {
      at += 4;
      continue;
    }
    if (id > XLR_MAX_BLOCK_ID) return `invalid block id ${id}`;
    if (!need(3)) return `block ${id} header runs past the record`;
    const forkFlags = view[at]!;
    payload += view.readUInt16LE(at + 1);
    at += 3;
    if (forkFlags & BKPBLOCK_HAS_IMAGE) {
      if (!need(5)) return `block ${id} image header runs past the record`;
      payload += view.readUInt16LE(at);
      const imageInfo = view[at + 4]!;
      at += 5;
      if (imageInfo & BKPIMAGE_HAS_HOLE && imageInfo & compressedBits) at += 2;
    }
    if (!(forkFlags & BKPBLOCK_SAME_REL)) at += REL_FILE_LOCATOR_SIZE;
    at += 4; // block number
  }
  if (at + payload + mainLength !== total) {
    return `headers describe ${at + payload + mainLength} bytes, xl_tot_len is ${total}`;
  }
  return { offset: total - mainLength, length: mainLength };
}
