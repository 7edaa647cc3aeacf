/**
 * What gzip and lz4 segments have in common: `NAME.gz.partial` / `NAME.lz4.partial` created fresh
 * (an existing one is truncated: its segment is streamed again from the start), no pre-padding,
 * compressor output appended with positional writes in order, `sync` = flush the compressor to a
 * decodable point + fsync, and a durable rename to `NAME.gz` / `NAME.lz4` once complete.
 */
import { join } from "node:path";
import { StorageError } from "../errors.js";
import { archiveSuffix } from "./compression.js";
import { APPENDER_HIGH_WATER_MARK, FileAppender } from "./file-appender.js";
import {
  fsyncCall,
  fsyncParentDirectory,
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
    method: "gzip" | "lz4",
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
    const handle = await storageCall("create", partialPath, () =>
      fileSystem.open(partialPath, OPEN_FRESH, fileMode),
    );
    const appender = new FileAppender(handle, partialPath);
    const encoder = this.createEncoder((output) => appender.append(output));
    try {
      if (encoder.header) appender.append(encoder.header);
      await appender.drain();
      if (!noSync) {
        await fsyncCall("fsync", partialPath, () => handle.sync());
        await fsyncParentDirectory(fileSystem, partialPath);
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
      partialPath,
      finalPath,
      this.options,
    );
  }

  hasHistoryFile(timeline: number): Promise<boolean> {
    return historyFileExists(this.options, timeline);
  }

  writeHistoryFile(timeline: number, content: Buffer): Promise<void> {
    return writeHistoryFileDurably(this.options, timeline, content);
  }
}

class CompressedSegmentFile implements SegmentFile {
  private written = 0;
  private readonly operations: SegmentOperations;

  constructor(
    readonly walFileName: string,
    private readonly segmentSize: number,
    private readonly handle: WalFileHandle,
    private readonly appender: FileAppender,
    private readonly encoder: SegmentEncoder,
    private readonly partialPath: string,
    readonly finalPath: string,
    private readonly options: ResolvedStorageOptions,
  ) {
    this.operations = new SegmentOperations(partialPath, async () => {
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
      throw new StorageError("compress data for", this.partialPath, error);
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
      if (!this.options.noSync) await fsyncCall("fsync", this.partialPath, () => this.handle.datasync());
    });
  }

  /** Ends the compressed stream, writes it out and (unless noSync) fsyncs it, then closes the file. */
  private async finishAndClose(): Promise<void> {
    await this.encode(() => this.encoder.finish());
    await this.appender.drain();
    if (!this.options.noSync) await fsyncCall("fsync", this.partialPath, () => this.handle.sync());
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
      await renameDurably(this.options.fileSystem, this.partialPath, this.finalPath, this.options.noSync);
    });
  }

  /**
   * Like pg_receivewal, a partial compressed file is closed as a complete stream (gzip trailer,
   * lz4 end mark), so that standard tools decode it without complaint.
   */
  closePartial(): Promise<void> {
    return this.operations.run("close", () => this.finishAndClose());
  }

  abandon(): Promise<void> {
    return this.operations.abandon();
  }
}
