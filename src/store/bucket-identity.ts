/**
 * A prefix holds one cluster's WAL. Write-once uploads already stop a cluster from overwriting
 * another's segment of the same name; this check also refuses a server whose WAL would land next to
 * another cluster's under different names, as the local archive refuses another cluster's directory.
 */
import { ArchiveError } from "../errors.js";
import { isValidSegmentSize } from "../lsn.js";
import {
  KNOWN_XLOG_PAGE_MAGIC,
  LONG_PAGE_HEADER_SIZE,
  parseWalPageHeader,
  WAL_BLOCK_SIZE,
} from "../wal/page-header.js";
import { bucketSource } from "./bucket-source.js";
import type { S3ObjectStore } from "./object-store.js";

/** Segments read to find a system identifier (a damaged first one is `verify`'s business). */
const SEGMENTS_TRIED = 3;

export async function checkBucketCluster(store: S3ObjectStore, systemId: bigint): Promise<void> {
  const source = bucketSource(store);
  const { segments } = await source.list();
  for (const entry of segments.slice(0, SEGMENTS_TRIED)) {
    let prefix: Buffer | undefined;
    try {
      const read = await source.readSegment(
        entry.fileName,
        entry.compression,
        entry.partial,
        LONG_PAGE_HEADER_SIZE,
      );
      prefix = read?.content.subarray(0, LONG_PAGE_HEADER_SIZE);
    } catch (error) {
      if ((error as { retryable?: unknown }).retryable === true) throw error;
      continue;
    }
    if (prefix === undefined || prefix.length < LONG_PAGE_HEADER_SIZE) continue;
    const header = parseWalPageHeader(prefix);
    // Only a real WAL page names a cluster; any other bytes are `verify`'s business.
    const isWal =
      KNOWN_XLOG_PAGE_MAGIC.has(header.magic) &&
      header.long?.blockSize === WAL_BLOCK_SIZE &&
      isValidSegmentSize(header.long.segmentSize);
    if (!isWal) continue;
    const stored = header.long!.systemIdentifier;
    if (stored === systemId) return;
    throw new ArchiveError(
      `${store.url} holds WAL of database system ${stored} (object "${entry.fileName}"), but the server's system identifier is ${systemId}: refusing to mix clusters; use an empty prefix for this server`,
    );
  }
}
