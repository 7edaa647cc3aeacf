/**
 * What gzip and lz4 segments have in common: `NAME.gz.partial` / `NAME.lz4.partial`, no
 * pre-padding, compressor output appended with positional writes in order, `sync` = flush the
 * compressor to a decodable point + fsync, and a durable rename to `NAME.gz` / `NAME.lz4` once
 * complete.
 *
 * A segment is always streamed again from its start, so a restart meets the `.partial` of the
 * previous run, whose WAL may have been reported flushed. It is never truncated: the new stream
 * goes to `NAME.gz.partial.tmp` and replaces the old file (fsync, rename, directory fsync) only
 * once it holds at least as much WAL; a stop before that keeps the old file.
 */
import { join } from "node:path";
import { StorageError } from "../errors.js";
import { archiveSuffix, openDecompressed } from "./compression.js";
import { APPENDER_HIGH_WATER_MARK, FileAppender } from "./file-appender.js";
import {
  fsyncCall,
  fsyncExistingFile,
  fsyncParentDirectory,
  OPEN_EXISTING_READ_ONLY,
  OPEN_FRESH,
  renameDurably,
  storageCall,
  type WalFileHandle,
} from "./fsync.js";
import { historyFileExists, writeHistoryFileDurably } from "./history-file.js";
import { PARTIAL_SUFFIX } from "./names.js";
import { checkSegmentArguments, SegmentOperations } from "./segment-operations.js";
import type { ResolvedStorageOptions, SegmentFile, WalStorage } from "./storage.js";

/**
 * A streaming compressor for one segment. Output goes to the `emit` callback it was created
 * with, in order; by the time a method's promise resolves, every output byte it produced has been
 * emitted.
 */
export interface SegmentEncoder {
  /** Bytes that open the file (the lz4 frame header), if any. */
  readonly header: Uint8Array | undefined;
  /** Compresses `chunks`; resolves once they are consumed (the caller may then reuse them). */
  write(chunks: readonly Uint8Array[]): Promise<void>;
  /** Emits everything needed to decode all input so far (Z_SYNC_FLUSH, end of an lz4 block). */
  flush(): Promise<void>;
  /** Ends the stream: remaining output and the trailer (gzip CRC/ISIZE, lz4 end mark). */
  finish(): Promise<void>;
  /** Drops the compressor without output (abandon). */
  destroy(): void;
}

export type SegmentEncoderFactory = (emit: (output: Uint8Array) => void) => SegmentEncoder;

export class CompressedWalStorage implements WalStorage {
  readonly directory: string;
  private readonly suffix: string;

  constructor(
    private readonly options: ResolvedStorageOptions,
    method: "gzip" | "lz4" | "zstd",
    private readonly createEncoder: SegmentEncoderFactory,
  ) {
    this.directory = options.directory;
    this.suffix = archiveSuffix(method);
  }

  async openSegment(walFileName: string, segmentSize: number): Promise<SegmentFile> {
    checkSegmentArguments(walFileName, segmentSize);
    const { fileSystem, noSync, fileMode } = this.options;
    const finalPath = join(this.directory, walFileName + this.suffix);
    const partialPath = finalPath + PARTIAL_SUFFIX;
    const previous = await this.previousPartialLength(partialPath, segmentSize);
    const writePath = previous > 0 ? partialPath + REPLACEMENT_SUFFIX : partialPath;
    const handle = await storageCall("create", writePath, () =>
      fileSystem.open(writePath, OPEN_FRESH, fileMode),
    );
    const appender = new FileAppender(handle, writePath);
    const encoder = this.createEncoder((output) => appender.append(output));
    try {
      if (encoder.header) appender.append(encoder.header);
      await appender.drain();
      if (!noSync) {
        await fsyncCall("fsync", writePath, () => handle.sync());
        await fsyncParentDirectory(fileSystem, writePath);
      }
    } catch (error) {
      encoder.destroy();
      await handle.close().catch(() => {});
      throw error;
    }
    return new CompressedSegmentFile(
      walFileName,
      segmentSize,
      handle,
      appender,
      encoder,
      { writePath, partialPath, previousLength: previous },
      finalPath,
      this.options,
    );
  }

  /**
   * WAL bytes an existing `.partial` holds (0 if none, or nothing decodable), made durable first:
   * the new stream's first reports rest on it until the new file replaces it.
   */
  private async previousPartialLength(partialPath: string, segmentSize: number): Promise<number> {
    const { fileSystem, noSync } = this.options;
    let handle: WalFileHandle;
    try {
      handle = await fileSystem.open(partialPath, OPEN_EXISTING_READ_ONLY);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return 0;
      throw new StorageError("open", partialPath, error);
    }
    try {
      if (!noSync) await fsyncCall("fsync", partialPath, () => handle.sync());
    } finally {
      await storageCall("close", partialPath, () => handle.close());
    }
    // More than a segment (a damaged file) needs no more than the whole segment to be covered.
    return Math.min(await decodableLength(partialPath, segmentSize), segmentSize);
  }

  async makeDurable(fileName: string): Promise<void> {
    if (!this.options.noSync)
      await fsyncExistingFile(this.options.fileSystem, join(this.directory, fileName));
  }

  hasHistoryFile(timeline: number): Promise<boolean> {
    return historyFileExists(this.options, timeline);
  }

  writeHistoryFile(timeline: number, content: Buffer): Promise<void> {
    return writeHistoryFileDurably(this.options, timeline, content);
  }
}

/** Where a segment is being written, and what it must cover before it may replace the old file. */
interface SegmentPaths {
  /** The file being written: the `.partial` itself, or its replacement. */
  writePath: string;
  partialPath: string;
  /** WAL bytes in the `.partial` of an earlier run still to be covered (0: nothing to replace). */
  previousLength: number;
}

class CompressedSegmentFile implements SegmentFile {
  private written = 0;
  private readonly operations: SegmentOperations;
  /** The new stream is under its replacement name, the old `.partial` still in place. */
  private replacing: boolean;

  constructor(
    readonly walFileName: string,
    private readonly segmentSize: number,
    private readonly handle: WalFileHandle,
    private readonly appender: FileAppender,
    private readonly encoder: SegmentEncoder,
    private readonly paths: SegmentPaths,
    readonly finalPath: string,
    private readonly options: ResolvedStorageOptions,
  ) {
    this.replacing = paths.writePath !== paths.partialPath;
    this.operations = new SegmentOperations(paths.writePath, async () => {
      encoder.destroy();
      await appender.drain().catch(() => {});
      await handle.close();
    });
  }

  get offset(): number {
    return this.written;
  }

  /** Runs a compressor step, reporting its failures as StorageErrors on this file. */
  private async encode(step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      if (error instanceof StorageError) throw error;
      throw new StorageError("compress data for", this.paths.writePath, error);
    }
    if (this.appender.error) throw this.appender.error;
  }

  write(chunks: readonly Uint8Array[], totalLength: number): Promise<void> {
    return this.operations.run("write to", async () => {
      this.operations.checkWriteBounds(chunks, totalLength, this.written, this.segmentSize);
      if (totalLength === 0) return;
      await this.encode(() => this.encoder.write(chunks));
      this.written += totalLength;
      // Bounded memory: a disk slower than the compressor holds the receiver back here.
      if (this.appender.pendingBytes > APPENDER_HIGH_WATER_MARK) await this.appender.drain();
    });
  }

  sync(): Promise<void> {
    return this.operations.run("sync", async () => {
      // Also under --no-sync (unlike pg_receivewal): the receiver reports what sync covered as
      // flushed, so it must at least have left the compressor and been handed to the OS, where
      // it survives the process being killed.
      await this.encode(() => this.encoder.flush());
      await this.appender.drain();
      if (!this.options.noSync) await fsyncCall("fsync", this.paths.writePath, () => this.handle.datasync());
      await this.replacePreviousIfCovered();
    });
  }

  /** Once the new stream (durable: synced just before) holds all the old `.partial` held, it takes its name. */
  private async replacePreviousIfCovered(): Promise<void> {
    if (!this.replacing || this.written < this.paths.previousLength) return;
    await renameDurably(
      this.options.fileSystem,
      this.paths.writePath,
      this.paths.partialPath,
      this.options.noSync,
    );
    this.replacing = false;
  }

  /** Ends the compressed stream, writes it out and (unless noSync) fsyncs it, then closes the file. */
  private async finishAndClose(): Promise<void> {
    await this.encode(() => this.encoder.finish());
    await this.appender.drain();
    if (!this.options.noSync) await fsyncCall("fsync", this.paths.writePath, () => this.handle.sync());
    await this.operations.close();
  }

  closeComplete(): Promise<void> {
    return this.operations.run("close", async () => {
      if (this.written !== this.segmentSize) {
        throw this.operations.refuse(
          "close",
          `segment is incomplete: ${this.written} of ${this.segmentSize} bytes written`,
        );
      }
      await this.finishAndClose();
      await this.replacePreviousIfCovered();
      await renameDurably(
        this.options.fileSystem,
        this.paths.partialPath,
        this.finalPath,
        this.options.noSync,
      );
    });
  }

  /**
   * Like pg_receivewal, a partial compressed file is closed as a complete stream (gzip trailer,
   * lz4 end mark), so that standard tools decode it without complaint. A replacement that does
   * not cover the old `.partial` yet is dropped: the old file holds more.
   */
  closePartial(): Promise<void> {
    return this.operations.run("close", async () => {
      await this.finishAndClose();
      if (this.replacing && this.written < this.paths.previousLength) {
        const { writePath } = this.paths;
        await storageCall("remove", writePath, () => this.options.fileSystem.unlink(writePath));
        return;
      }
      await this.replacePreviousIfCovered();
    });
  }

  abandon(): Promise<void> {
    // A replacement left behind holds nothing reported flushed that the old file (fsynced when
    // this one was opened) does not hold: the next open of the segment truncates it.
    return this.operations.abandon();
  }
}

/** Suffix of the new stream while an earlier run's `.partial` of the same segment is kept. */
const REPLACEMENT_SUFFIX = ".tmp";

/**
 * Bytes of WAL a compressed `.partial` decodes to, counting no further than just past
 * `segmentSize`. A stream that stops early or turns corrupt counts up to where it stops.
 */
async function decodableLength(path: string, segmentSize: number): Promise<number> {
  let decoded = 0;
  const stream = await openDecompressed(path, { allowTruncated: true });
  try {
    for await (const piece of stream as AsyncIterable<Buffer>) {
      decoded += piece.byteLength;
      if (decoded > segmentSize) break;
    }
  } catch {
    // Only the decodable prefix counts.
  } finally {
    stream.destroy();
  }
  return decoded;
}
