/**
 * Uncompressed segments, as pg_receivewal's directory method writes them: `NAME.partial`
 * pre-padded with zeros to the segment size and made durable (file and directory) before any WAL
 * goes in, positional writes, and a durable rename to `NAME` once the last byte is fsynced.
 *
 * One difference on purpose: a `.partial` of any size other than 0 or the segment size (only a
 * crash during pre-padding leaves one) is padded again with a warning instead of being fatal.
 */
import { join } from "node:path";
import {
  fsyncCall,
  fsyncExistingFile,
  fsyncParentDirectory,
  OPEN_FOR_PADDED_WRITE,
  renameDurably,
  storageCall,
  type WalFileHandle,
  writeAllAt,
  writeAllAtBlocking,
} from "./fsync.js";
import { historyFileExists, writeHistoryFileDurably } from "./history-file.js";
import { PARTIAL_SUFFIX } from "./names.js";
import { checkSegmentArguments, SegmentOperations } from "./segment-operations.js";
import type { ResolvedStorageOptions, SegmentFile, WalStorage } from "./storage.js";

/**
 * Zeros go out in small writes, as pg_receivewal's 8 KiB ones do. Measured on the 2-vCPU VM the
 * bench runs on (64 segments, C and Node alike): 16 MiB writes of zeros cost 2.0-2.4 CPU-s per GiB
 * of system time, 8-64 KiB writes 0.4-1.7, mostly under 1 (the kernel sizes new page-cache
 * folios by the write's length, and on that VM large ones are far dearer to allocate). Later WAL
 * writes reuse the folios.
 */
const ZERO_WRITE_BYTES = 32 * 1024;
/** The writes are blocking (one system call each, no thread-pool round trip)... */
const ZERO_BYTES_BETWEEN_YIELDS = 1024 * 1024;
let zeroPiece: Buffer | undefined;

/** ...with a turn of the event loop after each MiB, so timers and the socket are served meanwhile. */
async function fillWithZeros(handle: WalFileHandle, size: number): Promise<void> {
  zeroPiece ??= Buffer.alloc(ZERO_WRITE_BYTES);
  const writevBlocking = handle.writevBlocking;
  const writeBlocking =
    writevBlocking === undefined
      ? undefined
      : (buffers: readonly Uint8Array[], at: number) => writevBlocking.call(handle, buffers, at);
  let position = 0;
  while (position < size) {
    const sliceEnd = Math.min(size, position + ZERO_BYTES_BETWEEN_YIELDS);
    while (position < sliceEnd) {
      const length = Math.min(ZERO_WRITE_BYTES, sliceEnd - position);
      const piece = length === ZERO_WRITE_BYTES ? zeroPiece : zeroPiece.subarray(0, length);
      if (writeBlocking !== undefined) {
        writeAllAtBlocking(writeBlocking, [piece], position);
      } else {
        await writeAllAt(handle, [piece], position); // a test double without the blocking form
      }
      position += length;
    }
    if (writeBlocking !== undefined && position < size) await new Promise((resume) => setImmediate(resume));
  }
}

export class PlainWalStorage implements WalStorage {
  readonly directory: string;

  constructor(private readonly options: ResolvedStorageOptions) {
    this.directory = options.directory;
  }

  async openSegment(walFileName: string, segmentSize: number): Promise<SegmentFile> {
    checkSegmentArguments(walFileName, segmentSize);
    const { fileSystem, noSync, fileMode } = this.options;
    const partialName = walFileName + PARTIAL_SUFFIX;
    const partialPath = join(this.directory, partialName);
    const handle = await storageCall("open", partialPath, () =>
      fileSystem.open(partialPath, OPEN_FOR_PADDED_WRITE, fileMode),
    );
    try {
      const { size } = await storageCall("stat", partialPath, () => handle.stat());
      if (size !== segmentSize) {
        if (size !== 0) {
          this.options.onWarning(
            `write-ahead log file "${partialName}" has ${size} bytes, should be 0 or ${segmentSize}; padding it with zeros again`,
            { file: partialName, size, segmentSize },
          );
        }
        await storageCall("pad", partialPath, () => fillWithZeros(handle, segmentSize));
        if (size > segmentSize)
          await storageCall("truncate", partialPath, () => handle.truncate(segmentSize));
      }
      if (!noSync) {
        // Also for a reused file: a crash may have come between its padding and its fsync.
        await fsyncCall("fsync", partialPath, () => handle.sync());
        await fsyncParentDirectory(fileSystem, partialPath);
      }
    } catch (error) {
      await handle.close().catch(() => {});
      throw error;
    }
    return new PlainSegmentFile(
      walFileName,
      segmentSize,
      handle,
      partialPath,
      join(this.directory, walFileName),
      this.options,
    );
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

class PlainSegmentFile implements SegmentFile {
  private written = 0;
  private readonly operations: SegmentOperations;

  constructor(
    readonly walFileName: string,
    private readonly segmentSize: number,
    private readonly handle: WalFileHandle,
    private readonly partialPath: string,
    readonly finalPath: string,
    private readonly options: ResolvedStorageOptions,
  ) {
    this.operations = new SegmentOperations(partialPath, () => handle.close());
  }

  get offset(): number {
    return this.written;
  }

  write(chunks: readonly Uint8Array[], totalLength: number): Promise<void> {
    return this.operations.run("write", async () => {
      this.operations.checkWriteBounds(chunks, totalLength, this.written, this.segmentSize);
      if (totalLength === 0) return;
      const blocking = this.options.blockingWrites ? this.handle.writevBlocking : undefined;
      if (blocking !== undefined) {
        const write = (buffers: readonly Uint8Array[], position: number) =>
          blocking.call(this.handle, buffers, position);
        await storageCall("write to", this.partialPath, async () =>
          writeAllAtBlocking(write, chunks, this.written),
        );
      } else {
        await storageCall("write to", this.partialPath, () => writeAllAt(this.handle, chunks, this.written));
      }
      this.written += totalLength;
    });
  }

  sync(): Promise<void> {
    if (this.options.noSync) return this.operations.run("sync", async () => {});
    const handle = this.handle;
    if (this.options.blockingWrites && handle.datasyncBlocking !== undefined) {
      return this.operations.run("sync", () =>
        fsyncCall("fsync", this.partialPath, async () => handle.datasyncBlocking!()),
      );
    }
    return this.operations.run("sync", () => fsyncCall("fsync", this.partialPath, () => handle.datasync()));
  }

  closeComplete(): Promise<void> {
    return this.operations.run("close", async () => {
      if (this.written !== this.segmentSize) {
        throw this.operations.refuse(
          "close",
          `segment is incomplete: ${this.written} of ${this.segmentSize} bytes written`,
        );
      }
      if (!this.options.noSync) await fsyncCall("fsync", this.partialPath, () => this.handle.sync());
      await this.operations.close();
      await renameDurably(this.options.fileSystem, this.partialPath, this.finalPath, this.options.noSync);
    });
  }

  closePartial(): Promise<void> {
    return this.operations.run("close", async () => {
      if (!this.options.noSync) await fsyncCall("fsync", this.partialPath, () => this.handle.sync());
      await this.operations.close();
    });
  }

  abandon(): Promise<void> {
    return this.operations.abandon();
  }
}
