/**
 * The LZ4 frame format (magic 0x184D2204), the container the `lz4` command-line tool and
 * PostgreSQL's LZ4F code read and write: a header with an XXH32 checksum, size-prefixed blocks,
 * an end mark, and an optional XXH32 of the whole content.
 *
 * The encoder writes independent blocks (each decodable on its own) of at most the declared
 * maximum block size; `flush` ends the current block early so that everything written so far
 * can be decoded from the file (what a WAL `sync` needs). The decoder also reads linked-block
 * frames (PostgreSQL's default), skippable frames and concatenated frames.
 */
import { Transform, type TransformCallback } from "node:stream";
import { ArchiveError } from "../errors.js";
import { Lz4BlockCompressor, lz4CompressBound, lz4DecompressBlock } from "./lz4-block.js";
import { XxHash32, xxhash32 } from "./xxhash32.js";

export const LZ4_FRAME_MAGIC = 0x184d2204;
const SKIPPABLE_MAGIC_BASE = 0x184d2a50;
const SKIPPABLE_MAGIC_MASK = 0xfffffff0;
const END_MARK = 0;
const UNCOMPRESSED_BLOCK_FLAG = 0x8000_0000;
/** Linked blocks may refer this far back into earlier blocks' output. */
const LINKED_WINDOW = 64 * 1024;

const FLG_VERSION = 0x40;
const FLG_VERSION_MASK = 0xc0;
const FLG_BLOCK_INDEPENDENCE = 0x20;
const FLG_BLOCK_CHECKSUM = 0x10;
const FLG_CONTENT_SIZE = 0x08;
const FLG_CONTENT_CHECKSUM = 0x04;
const FLG_RESERVED = 0x02;
const FLG_DICTIONARY_ID = 0x01;

/** Block maximum size identifiers of the BD byte: 4 = 64 KiB, 5 = 256 KiB, 6 = 1 MiB, 7 = 4 MiB. */
export type Lz4BlockSizeId = 4 | 5 | 6 | 7;

export function lz4MaxBlockSize(id: Lz4BlockSizeId): number {
  return 1 << (8 + 2 * id);
}

export interface Lz4FrameEncoderOptions {
  /** Declared maximum block size; default 7 (4 MiB), the lz4 tool's default. */
  blockSizeId?: Lz4BlockSizeId;
  /** Append an XXH32 of the whole content after the end mark (default true, as the lz4 tool). */
  contentChecksum?: boolean;
  /** Append an XXH32 of each block's stored bytes (default false). */
  blockChecksum?: boolean;
}

export class Lz4FrameEncoder {
  readonly maxBlockSize: number;
  private readonly blockSizeId: Lz4BlockSizeId;
  private readonly contentChecksum: XxHash32 | undefined;
  private readonly blockChecksum: boolean;
  private readonly compressor = new Lz4BlockCompressor();
  private input: Buffer | undefined;
  private inputLength = 0;
  private scratch: Buffer | undefined;
  private ended = false;

  constructor(options: Lz4FrameEncoderOptions = {}) {
    this.blockSizeId = options.blockSizeId ?? 7;
    this.maxBlockSize = lz4MaxBlockSize(this.blockSizeId);
    this.contentChecksum = (options.contentChecksum ?? true) ? new XxHash32() : undefined;
    this.blockChecksum = options.blockChecksum ?? false;
  }

  /** Magic number and frame descriptor: the first bytes of the file. */
  header(): Buffer {
    let flags = FLG_VERSION | FLG_BLOCK_INDEPENDENCE;
    if (this.blockChecksum) flags |= FLG_BLOCK_CHECKSUM;
    if (this.contentChecksum) flags |= FLG_CONTENT_CHECKSUM;
    const header = Buffer.alloc(7);
    header.writeUInt32LE(LZ4_FRAME_MAGIC, 0);
    header[4] = flags;
    header[5] = this.blockSizeId << 4;
    header[6] = (xxhash32(header.subarray(4, 6)) >>> 8) & 0xff;
    return header;
  }

  /** Takes input (copied; the caller may reuse it) and returns the blocks completed by it. */
  update(data: Uint8Array): Buffer[] {
    if (this.ended) throw new Error("LZ4 frame already ended");
    this.contentChecksum?.update(data);
    const output: Buffer[] = [];
    this.input ??= Buffer.allocUnsafe(this.maxBlockSize);
    let at = 0;
    while (at < data.byteLength) {
      const take = Math.min(this.maxBlockSize - this.inputLength, data.byteLength - at);
      this.input.set(data.subarray(at, at + take), this.inputLength);
      this.inputLength += take;
      at += take;
      if (this.inputLength === this.maxBlockSize) output.push(this.compressPending());
    }
    return output;
  }

  /** Ends the current block so that all input so far is decodable from the output so far. */
  flush(): Buffer[] {
    return this.inputLength > 0 ? [this.compressPending()] : [];
  }

  /** Flushes, then writes the end mark and the content checksum. */
  end(): Buffer[] {
    const output = this.flush();
    this.ended = true;
    const trailer = Buffer.alloc(this.contentChecksum ? 8 : 4);
    trailer.writeUInt32LE(END_MARK, 0);
    if (this.contentChecksum) trailer.writeUInt32LE(this.contentChecksum.digest(), 4);
    output.push(trailer);
    return output;
  }

  private compressPending(): Buffer {
    const input = this.input!.subarray(0, this.inputLength);
    this.inputLength = 0;
    this.scratch ??= Buffer.allocUnsafe(lz4CompressBound(this.maxBlockSize));
    const compressedLength = this.compressor.compress(input, this.scratch);
    const stored = compressedLength < input.byteLength;
    const body = stored ? this.scratch.subarray(0, compressedLength) : input;
    const block = Buffer.allocUnsafe(4 + body.byteLength + (this.blockChecksum ? 4 : 0));
    block.writeUInt32LE(stored ? body.byteLength : (body.byteLength | UNCOMPRESSED_BLOCK_FLAG) >>> 0, 0);
    block.set(body, 4);
    if (this.blockChecksum) block.writeUInt32LE(xxhash32(body), 4 + body.byteLength);
    return block;
  }
}

/** One-shot: the whole of `data` as one LZ4 frame. */
export function lz4CompressFrame(data: Uint8Array, options?: Lz4FrameEncoderOptions): Buffer {
  const encoder = new Lz4FrameEncoder(options);
  return Buffer.concat([encoder.header(), ...encoder.update(data), ...encoder.end()]);
}

export interface Lz4FrameDecoderOptions {
  /**
   * Accept input that stops inside a frame (a `.lz4.partial` file: blocks flushed by `sync` but
   * no end mark yet). Whatever complete blocks were read are returned; the rest is dropped.
   */
  allowTruncated?: boolean;
}

type DecoderState =
  | { kind: "magic" }
  | { kind: "skip"; remaining: number }
  | { kind: "descriptor" }
  | { kind: "blockHeader" }
  | { kind: "blockData"; size: number; uncompressed: boolean }
  | { kind: "contentChecksum" };

interface FrameInfo {
  independent: boolean;
  blockChecksum: boolean;
  contentChecksum: XxHash32 | undefined;
  contentSize: bigint | undefined;
  maxBlockSize: number;
  decodedSize: bigint;
}

/** Incremental decoder: push compressed bytes, get decoded bytes back. */
export class Lz4FrameDecoder {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private state: DecoderState = { kind: "magic" };
  private frame: FrameInfo | undefined;
  private window: Buffer | undefined;
  private historyLength = 0;
  private framesSeen = 0;

  constructor(private readonly options: Lz4FrameDecoderOptions = {}) {}

  /** Decoded bytes made available by `data`. */
  push(data: Uint8Array): Buffer[] {
    if (data.byteLength > 0) {
      this.chunks.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
      this.buffered += data.byteLength;
    }
    const output: Buffer[] = [];
    while (this.step(output)) {
      // keep going while a step made progress
    }
    return output;
  }

  /** Declares the end of input; throws if it ended inside a frame (unless allowTruncated). */
  finish(): void {
    const clean = this.state.kind === "magic" && this.buffered === 0;
    if (clean && this.framesSeen > 0) return;
    if (this.options.allowTruncated) return;
    if (this.framesSeen === 0 && this.buffered === 0 && this.state.kind === "magic") {
      throw new ArchiveError("corrupt LZ4 data: empty input");
    }
    throw new ArchiveError("corrupt LZ4 data: input ends inside a frame");
  }

  /** Takes exactly `length` buffered bytes, or undefined if not that many are buffered yet. */
  private take(length: number): Buffer | undefined {
    if (this.buffered < length) return undefined;
    this.buffered -= length;
    const first = this.chunks[0];
    if (first && first.byteLength >= length) {
      const taken = first.subarray(0, length);
      if (first.byteLength === length) this.chunks.shift();
      else this.chunks[0] = first.subarray(length);
      return taken;
    }
    const taken = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const chunk = this.chunks[0]!;
      const use = Math.min(chunk.byteLength, length - filled);
      taken.set(chunk.subarray(0, use), filled);
      filled += use;
      if (use === chunk.byteLength) this.chunks.shift();
      else this.chunks[0] = chunk.subarray(use);
    }
    return taken;
  }

  private peekByte(index: number): number | undefined {
    let at = index;
    for (const chunk of this.chunks) {
      if (at < chunk.byteLength) return chunk[at];
      at -= chunk.byteLength;
    }
    return undefined;
  }

  /** Performs one state transition if enough input is buffered; returns whether it did. */
  private step(output: Buffer[]): boolean {
    const state = this.state;
    switch (state.kind) {
      case "magic": {
        const bytes = this.take(4);
        if (!bytes) return false;
        const magic = bytes.readUInt32LE(0);
        if (magic === LZ4_FRAME_MAGIC) {
          this.state = { kind: "descriptor" };
        } else if ((magic & SKIPPABLE_MAGIC_MASK) >>> 0 === SKIPPABLE_MAGIC_BASE) {
          const size = this.take(4);
          if (!size) {
            // Put the magic back until the size arrives.
            this.chunks.unshift(bytes);
            this.buffered += 4;
            return false;
          }
          this.state = { kind: "skip", remaining: size.readUInt32LE(0) };
        } else {
          throw new ArchiveError(`corrupt LZ4 data: unknown frame magic 0x${magic.toString(16)}`);
        }
        return true;
      }
      case "skip": {
        const use = Math.min(state.remaining, this.buffered);
        if (use === 0 && state.remaining > 0) return false;
        this.take(use);
        state.remaining -= use;
        if (state.remaining === 0) this.state = { kind: "magic" };
        return true;
      }
      case "descriptor": {
        const flags = this.peekByte(0);
        if (flags === undefined) return false;
        const length = 3 + (flags & FLG_CONTENT_SIZE ? 8 : 0) + (flags & FLG_DICTIONARY_ID ? 4 : 0);
        const descriptor = this.take(length);
        if (!descriptor) return false;
        this.frame = this.parseDescriptor(descriptor);
        this.historyLength = 0;
        this.framesSeen++;
        this.state = { kind: "blockHeader" };
        return true;
      }
      case "blockHeader": {
        const bytes = this.take(4);
        if (!bytes) return false;
        const word = bytes.readUInt32LE(0);
        const frame = this.frame!;
        if (word === END_MARK) {
          if (frame.contentSize !== undefined && frame.contentSize !== frame.decodedSize) {
            throw new ArchiveError(
              `corrupt LZ4 data: frame declares ${frame.contentSize} bytes but holds ${frame.decodedSize}`,
            );
          }
          this.state = frame.contentChecksum ? { kind: "contentChecksum" } : { kind: "magic" };
          return true;
        }
        const size = (word & ~UNCOMPRESSED_BLOCK_FLAG) >>> 0;
        if (size > frame.maxBlockSize)
          throw new ArchiveError("corrupt LZ4 data: block larger than the maximum");
        this.state = { kind: "blockData", size, uncompressed: (word & UNCOMPRESSED_BLOCK_FLAG) !== 0 };
        return true;
      }
      case "blockData": {
        const frame = this.frame!;
        const stored = this.take(state.size + (frame.blockChecksum ? 4 : 0));
        if (!stored) return false;
        const body = stored.subarray(0, state.size);
        if (frame.blockChecksum && xxhash32(body) !== stored.readUInt32LE(state.size)) {
          throw new ArchiveError("corrupt LZ4 data: block checksum mismatch");
        }
        const decoded = this.decodeBlock(body, state.uncompressed);
        frame.contentChecksum?.update(decoded);
        frame.decodedSize += BigInt(decoded.byteLength);
        if (decoded.byteLength > 0) output.push(decoded);
        this.state = { kind: "blockHeader" };
        return true;
      }
      case "contentChecksum": {
        const bytes = this.take(4);
        if (!bytes) return false;
        if (this.frame!.contentChecksum!.digest() !== bytes.readUInt32LE(0)) {
          throw new ArchiveError("corrupt LZ4 data: content checksum mismatch");
        }
        this.state = { kind: "magic" };
        return true;
      }
    }
  }

  private parseDescriptor(descriptor: Buffer): FrameInfo {
    const flags = descriptor[0]!;
    const bd = descriptor[1]!;
    if ((flags & FLG_VERSION_MASK) !== FLG_VERSION)
      throw new ArchiveError("corrupt LZ4 data: unsupported version");
    if (flags & FLG_RESERVED || bd & 0x8f) throw new ArchiveError("corrupt LZ4 data: reserved bits set");
    if (flags & FLG_DICTIONARY_ID) throw new ArchiveError("LZ4 frames with a dictionary are not supported");
    const checksumAt = descriptor.byteLength - 1;
    if (((xxhash32(descriptor.subarray(0, checksumAt)) >>> 8) & 0xff) !== descriptor[checksumAt]) {
      throw new ArchiveError("corrupt LZ4 data: header checksum mismatch");
    }
    const sizeId = (bd >>> 4) & 7;
    if (sizeId < 4) throw new ArchiveError("corrupt LZ4 data: invalid block size");
    return {
      independent: (flags & FLG_BLOCK_INDEPENDENCE) !== 0,
      blockChecksum: (flags & FLG_BLOCK_CHECKSUM) !== 0,
      contentChecksum: flags & FLG_CONTENT_CHECKSUM ? new XxHash32() : undefined,
      contentSize: flags & FLG_CONTENT_SIZE ? descriptor.readBigUInt64LE(2) : undefined,
      maxBlockSize: lz4MaxBlockSize(sizeId as Lz4BlockSizeId),
      decodedSize: 0n,
    };
  }

  /** Decodes into a window that keeps the last 64 KiB of output for linked-block frames. */
  private decodeBlock(body: Buffer, uncompressed: boolean): Buffer {
    const frame = this.frame!;
    const needed = LINKED_WINDOW + frame.maxBlockSize;
    if (!this.window || this.window.byteLength < needed) {
      const grown = Buffer.allocUnsafe(needed);
      if (this.window && this.historyLength > 0) this.window.copy(grown, 0, 0, this.historyLength);
      this.window = grown;
    }
    const window = this.window;
    const start = frame.independent ? 0 : this.historyLength;
    let end: number;
    if (uncompressed) {
      window.set(body, start);
      end = start + body.byteLength;
    } else {
      end = lz4DecompressBlock(body, 0, body.byteLength, window, start, start + frame.maxBlockSize, 0);
    }
    const decoded = Buffer.from(window.subarray(start, end));
    if (!frame.independent) {
      if (end > LINKED_WINDOW) {
        window.copyWithin(0, end - LINKED_WINDOW, end);
        this.historyLength = LINKED_WINDOW;
      } else {
        this.historyLength = end;
      }
    }
    return decoded;
  }
}

/** A Transform stream that decodes LZ4 frames. */
export function createLz4DecompressStream(options?: Lz4FrameDecoderOptions): Transform {
  const decoder = new Lz4FrameDecoder(options);
  return new Transform({
    transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback) {
      try {
        for (const piece of decoder.push(chunk)) this.push(piece);
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
    flush(callback: TransformCallback) {
      try {
        decoder.finish();
        callback();
      } catch (error) {
        callback(error as Error);
      }
    },
  });
}

/** One-shot decode of a whole buffer (one or more frames). */
export function lz4DecompressFrames(data: Uint8Array, options?: Lz4FrameDecoderOptions): Buffer {
  const decoder = new Lz4FrameDecoder(options);
  const output = decoder.push(data);
  decoder.finish();
  return Buffer.concat(output);
}
