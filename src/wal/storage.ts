/**
 * Where and how WAL is stored, behind one small interface (the role of walmethods.c in
 * PostgreSQL). The receiver loop only knows positions and these operations; plain files, gzip and
 * lz4 are implementations it never tells apart.
 *
 * Durability contract (the receiver builds its flush position on it):
 * - `write` hands bytes to the OS (or to the compressor) in order; it does NOT make them durable.
 * - `sync` makes everything written so far durable (compressors flush a decodable block first).
 *   Under `noSync` it is a no-op, and the receiver must not report a flush position at all.
 * - `closeComplete` makes the segment durable and then gives it its final name, and makes the
 *   rename durable (fsync file, rename, fsync directory), in that order.
 * - `closePartial` makes what was written durable and leaves the file under its `.partial` name.
 * - `abandon` closes without syncing or renaming (used on errors: the next run re-streams).
 */
export interface SegmentFile {
  /** Segment file name without suffixes: TTTTTTTTXXXXXXXXYYYYYYYY. */
  readonly walFileName: string;
  /** Offset in the segment where the next write goes (bytes written so far). */
  readonly offset: number;
  /**
   * Writes `chunks` (in order, `totalLength` bytes) at `offset`. Must not cross the segment end.
   * The buffers may be views into socket reads; they are not retained after the promise settles.
   */
  write(chunks: readonly Uint8Array[], totalLength: number): Promise<void>;
  sync(): Promise<void>;
  closeComplete(): Promise<void>;
  closePartial(): Promise<void>;
  abandon(): Promise<void>;
}

export interface WalStorage {
  /** Directory the archive lives in. */
  readonly directory: string;
  /**
   * Opens the segment for writing from offset 0 under its partial name, creating or reusing the
   * file as pg_receivewal does (plain: pre-padded with zeros to `segmentSize` and fsynced with its
   * directory before this resolves; compressed: a fresh stream).
   */
  openSegment(walFileName: string, segmentSize: number): Promise<SegmentFile>;
  /** True when `TTTTTTTT.history` is already in the archive. */
  hasHistoryFile(timeline: number): Promise<boolean>;
  /** Writes `TTTTTTTT.history` durably via a temporary name and a rename. */
  writeHistoryFile(timeline: number, content: Buffer): Promise<void>;
}
