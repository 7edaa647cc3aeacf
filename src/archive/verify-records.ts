/**
 * `pgwal verify --records`: reads every record of every segment file in the archive (plain, gzip,
 * lz4, zstd) with the WAL record reader and reports what is wrong, each problem named by file and LSN:
 * a CRC mismatch, a broken xl_prev chain, an impossible length, a missing continuation, a page
 * that does not belong. Files of one timeline are read in order so that records crossing segment
 * boundaries are checked whole; after a gap or a problem, reading resumes at the first record that
 * begins in the next file. Missing files, sizes and timelines are verifyArchive's job.
 */
import { join } from "node:path";
import { ArchiveError } from "../errors.js";
import { formatLsn, type Lsn, segmentStartLsn } from "../lsn.js";
import { storageCall } from "../wal/fsync.js";
import { parseWalFileName } from "../wal/names.js";
import { LONG_PAGE_HEADER_SIZE, parseWalPageHeader, WAL_BLOCK_SIZE } from "../wal/page-header.js";
import { crc32cImplementation } from "../wal/records/crc32c.js";
import type { WalRecordProblemKind } from "../wal/records/record-problem.js";
import { WalRecordReader } from "../wal/records/record-reader.js";
import { openArchiveFile, readSegmentFile } from "./archive-file.js";
import { listArchiveDirectory, type SegmentFileEntry } from "./archive-listing.js";
import { formatVerifyReport, type VerifyReport } from "./verify.js";

export type RecordProblemKind = WalRecordProblemKind | "unreadable" | "truncated" | "early-end";

export interface RecordProblem {
  kind: RecordProblemKind;
  /** The file the record (or page) begins in, else the file being read. */
  file: string;
  lsn: string | null;
  message: string;
}

export interface RecordVerifyOptions {
  /** Only files holding WAL between `from` and `to` are read. */
  from?: Lsn;
  to?: Lsn;
}

export interface RecordVerifyReport {
  ok: boolean;
  filesRead: number;
  records: number;
  /** WAL bytes read (decompressed). */
  bytes: number;
  seconds: number;
  /** Bytes per second / 10^6. */
  megabytesPerSecond: number;
  /** Process CPU time (user + system) spent meanwhile. */
  cpuSeconds: number;
  crc32c: "native" | "table";
  problems: RecordProblem[];
}

/** Whether the file's segment overlaps the requested range. */
function inRange(entry: SegmentFileEntry, segmentSize: number, options: RecordVerifyOptions): boolean {
  const segNo = parseWalFileName(entry.walFileName, segmentSize)?.segNo;
  if (segNo === undefined) return false;
  const start = segmentStartLsn(segNo, segmentSize);
  return (
    (options.to === undefined || start <= options.to) &&
    (options.from === undefined || start + BigInt(segmentSize) > options.from)
  );
}

/**
 * Plain files are read into one buffer reused from file to file (the reader keeps copies of what
 * outlives a feed), compressed ones through the bounded decompressing reader. Both open only
 * regular files inside the archive (see archive-file.ts): a link or FIFO is a problem, not a read.
 */
class WalFileReader {
  private buffer = Buffer.alloc(0);

  async read(directory: string, entry: SegmentFileEntry): Promise<Buffer | undefined> {
    if (entry.compression !== "none")
      return (await readSegmentFile(directory, entry.fileName, entry.compression, entry.partial))?.content;
    const handle = await openArchiveFile(directory, entry.fileName);
    if (handle === undefined) return undefined;
    const path = join(directory, entry.fileName);
    try {
      return await storageCall("read", path, async () => {
        const { size } = await handle.stat();
        if (size > MAX_PLAIN_FILE)
          throw new ArchiveError(`"${path}" is ${size} bytes, larger than any segment`);
        if (this.buffer.length < size) this.buffer = Buffer.allocUnsafe(size);
        let got = 0;
        while (got < size) {
          const { bytesRead } = await handle.read(this.buffer, got, size - got, got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        return this.buffer.subarray(0, got);
      });
    } finally {
      await handle.close();
    }
  }
}

/** Segments are at most 1 GiB. */
const MAX_PLAIN_FILE = 1 << 30;

/** The segment size a file's first page declares, if it has a usable long header. */
function declaredSegmentSize(content: Buffer): number | undefined {
  if (content.length < LONG_PAGE_HEADER_SIZE) return undefined;
  return parseWalPageHeader(content.subarray(0, LONG_PAGE_HEADER_SIZE)).long?.segmentSize;
}

export async function verifyArchiveRecords(
  directory: string,
  options: RecordVerifyOptions = {},
): Promise<RecordVerifyReport> {
  const listing = await listArchiveDirectory(directory);
  const problems: RecordProblem[] = [];
  const startedAt = process.hrtime.bigint();
  const cpuBefore = process.cpuUsage();
  let filesRead = 0;
  let records = 0;
  let bytes = 0;

  // The segment size is not in file names: the first file whose long header declares one sets it.
  const timelines = new Map<number, SegmentFileEntry[]>();
  for (const entry of listing.segments) {
    timelines.set(entry.timeline, [...(timelines.get(entry.timeline) ?? []), entry]);
  }
  let segmentSize: number | undefined;
  const files = new WalFileReader();
  for (const [, entries] of [...timelines].sort(([x], [y]) => x - y)) {
    // Names sort in stream order within a timeline (a ".partial" after the complete file of its segment).
    let reader: WalRecordReader | undefined;
    const fileOfSegment = new Map<bigint, string>();
    for (const entry of entries) {
      if (segmentSize !== undefined && !inRange(entry, segmentSize, options)) continue;
      let content: Buffer | undefined;
      try {
        content = await files.read(directory, entry);
      } catch (error) {
        problems.push({
          kind: "unreadable",
          file: entry.fileName,
          lsn: null,
          message: (error as Error).message,
        });
        reader = undefined;
        continue;
      }
      if (content === undefined) continue;
      const declared = declaredSegmentSize(content);
      segmentSize ??= declared;
      if (segmentSize === undefined || declared !== segmentSize || !inRange(entry, segmentSize, options)) {
        // No first page, or another segment size: verifyArchive names such files; their records are not read.
        reader = undefined;
        continue;
      }
      const size = segmentSize;
      const segNo = parseWalFileName(entry.walFileName, size)?.segNo;
      if (segNo === undefined) continue;
      const start = segmentStartLsn(segNo, size);
      fileOfSegment.set(segNo, entry.fileName);
      filesRead++;
      bytes += content.length;
      reader ??= new WalRecordReader({ segmentSize: size });
      const whole = Math.min(content.length - (content.length % WAL_BLOCK_SIZE), size);
      const recordsBefore = reader.records;
      let stop: ReturnType<WalRecordReader["feed"]>;
      try {
        stop = reader.feed(content.subarray(0, whole), start);
      } catch (error) {
        if (!(error instanceof ArchiveError)) throw error;
        problems.push({ kind: "page", file: entry.fileName, lsn: null, message: error.message });
        reader = undefined;
        continue;
      }
      records += reader.records - recordsBefore;
      if (stop?.kind === "problem") {
        const where = stop.problem.lsn;
        const ownFile = fileOfSegment.get(where / BigInt(size)) ?? entry.fileName;
        problems.push({
          kind: stop.problem.kind,
          file: ownFile,
          lsn: formatLsn(where),
          message:
            ownFile === entry.fileName
              ? stop.problem.message
              : `${stop.problem.message} (found while reading ${entry.fileName})`,
        });
      } else if (stop?.kind === "end-of-wal" && !entry.partial) {
        problems.push({
          kind: "early-end",
          file: entry.fileName,
          lsn: formatLsn(stop.lsn),
          message: `WAL ends at ${formatLsn(stop.lsn)}, before the end of this complete segment`,
        });
      } else if (!entry.partial && content.length < size) {
        const end = start + BigInt(whole);
        problems.push({
          kind: "truncated",
          file: entry.fileName,
          lsn: formatLsn(end),
          message: `segment holds ${content.length} of ${size} bytes: records from ${formatLsn(end)} on are missing`,
        });
      }
    }
  }
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  const cpu = process.cpuUsage(cpuBefore);
  return {
    ok: problems.length === 0,
    filesRead,
    records,
    bytes,
    seconds,
    megabytesPerSecond: seconds > 0 ? bytes / seconds / 1e6 : 0,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    crc32c: crc32cImplementation,
    problems,
  };
}

/** formatVerifyReport's text with the record check added: its line, its problems, and the total in the first line. */
export function formatVerifyWithRecords(report: VerifyReport, records: RecordVerifyReport): string {
  const lines = formatVerifyReport(report).split("\n");
  const total = report.problems.length + records.problems.length;
  lines[0] = `archive ${report.directory}: ${total === 0 ? "OK" : `${total} problem(s)`}`;
  return lines.join("\n") + formatRecordsReport(records);
}

export function formatRecordsReport(report: RecordVerifyReport): string {
  const lines = [
    `  records: ${report.records} record(s) in ${report.filesRead} file(s) checked, ${report.bytes} bytes, ${report.megabytesPerSecond.toFixed(1)} MB/s (${report.seconds.toFixed(2)} s, CPU ${report.cpuSeconds.toFixed(2)} s)${report.ok ? "" : `: ${report.problems.length} problem(s)`}`,
  ];
  for (const problem of report.problems) lines.push(`  error: ${problem.file}: ${problem.message}`);
  return `${lines.join("\n")}\n`;
}
