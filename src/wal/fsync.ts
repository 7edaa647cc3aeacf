/**
 * The few file-system operations the segment writers use, behind a small interface so that tests
 * can record their order (rename only after fsync) or inject failures (ENOSPC). Everything here
 * is async — the receiver's event loop must not wait on the disk — except the optional blocking
 * forms, which only a synchronous standby uses (see `ResolvedStorageOptions.blockingWrites`).
 */
import { constants, fdatasyncSync, writevSync } from "node:fs";
import * as fsp from "node:fs/promises";
import { dirname } from "node:path";
import { FsyncError, StorageError } from "../errors.js";

/** The subset of fs/promises' FileHandle the writers need. */
export interface WalFileHandle {
  writev(buffers: readonly NodeJS.ArrayBufferView[], position?: number): Promise<{ bytesWritten: number }>;
  stat(): Promise<{ size: number }>;
  truncate(length?: number): Promise<void>;
  sync(): Promise<void>;
  datasync(): Promise<void>;
  close(): Promise<void>;
  /** `writev` in the calling thread; test doubles may leave it out (the async form is used then). */
  writevBlocking?(buffers: readonly NodeJS.ArrayBufferView[], position: number): number;
  /** `datasync` in the calling thread; present exactly when `writevBlocking` is. */
  datasyncBlocking?(): void;
}

/** fs/promises' FileHandle with the blocking forms added (they use its descriptor). */
class NodeWalFileHandle implements WalFileHandle {
  constructor(private readonly handle: fsp.FileHandle) {}
  writev(buffers: readonly NodeJS.ArrayBufferView[], position?: number) {
    return this.handle.writev(buffers, position);
  }
  stat() {
    return this.handle.stat();
  }
  truncate(length?: number) {
    return this.handle.truncate(length);
  }
  sync() {
    return this.handle.sync();
  }
  datasync() {
    return this.handle.datasync();
  }
  close() {
    return this.handle.close();
  }
  writevBlocking(buffers: readonly NodeJS.ArrayBufferView[], position: number): number {
    return writevSync(this.handle.fd, buffers, position);
  }
  datasyncBlocking(): void {
    fdatasyncSync(this.handle.fd);
  }
}

export interface WalFileSystem {
  open(path: string, flags: number, mode?: number): Promise<WalFileHandle>;
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** fsync a directory so that creations and renames in it survive a crash. */
  fsyncDirectory(path: string): Promise<void>;
}

/** Open flags used by the writers. */
export const OPEN_FOR_PADDED_WRITE = constants.O_RDWR | constants.O_CREAT;
export const OPEN_FRESH = constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC;
export const OPEN_EXISTING_READ_ONLY = constants.O_RDONLY;

export const DEFAULT_FILE_MODE = 0o600;

async function fsyncDirectory(path: string): Promise<void> {
  const handle = await fsp.open(path, constants.O_RDONLY);
  try {
    await handle.sync();
  } catch (error) {
    // Like PostgreSQL's fsync_fname: some file systems cannot fsync a directory; that is not fatal.
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== "EINVAL" && code !== "EBADF" && code !== "EISDIR") throw error;
  } finally {
    await handle.close();
  }
}

export const nodeFileSystem: WalFileSystem = {
  open: async (path, flags, mode) => new NodeWalFileHandle(await fsp.open(path, flags, mode)),
  rename: (from, to) => fsp.rename(from, to),
  unlink: (path) => fsp.unlink(path),
  fsyncDirectory,
};

/** Runs a file-system call, turning any failure into a StorageError naming the file. */
export async function storageCall<T>(operation: string, path: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof StorageError) throw error;
    throw new StorageError(operation, path, error);
  }
}

/** Runs an fsync, turning any failure into an FsyncError (which stops the receiver). */
export async function fsyncCall(operation: string, path: string, call: () => Promise<void>): Promise<void> {
  try {
    await call();
  } catch (error) {
    throw new FsyncError(operation, path, error);
  }
}

/** fsync the directory that holds `path`. */
export function fsyncParentDirectory(fileSystem: WalFileSystem, path: string): Promise<void> {
  const directory = dirname(path);
  return fsyncCall("fsync directory of", directory, () => fileSystem.fsyncDirectory(directory));
}

/**
 * fsyncs an existing file and then its directory. For what an earlier run left: it may have been
 * killed after a write or a rename and before the fsync that would have made it durable.
 */
export async function fsyncExistingFile(fileSystem: WalFileSystem, path: string): Promise<void> {
  const handle = await storageCall("open", path, () => fileSystem.open(path, OPEN_EXISTING_READ_ONLY));
  try {
    await fsyncCall("fsync", path, () => handle.sync());
  } finally {
    await storageCall("close", path, () => handle.close());
  }
  await fsyncParentDirectory(fileSystem, path);
}

/**
 * Renames `from` to `to` and, unless `noSync`, fsyncs the directory afterwards. The caller must
 * have fsynced and closed `from` already: a rename must never expose a name whose bytes are not
 * durable yet.
 */
export async function renameDurably(
  fileSystem: WalFileSystem,
  from: string,
  to: string,
  noSync: boolean,
): Promise<void> {
  await storageCall("rename", from, () => fileSystem.rename(from, to));
  if (!noSync) await fsyncParentDirectory(fileSystem, to);
}

/** An error with an errno code, for failures the OS reports without one (a write of 0 bytes). */
export function errnoError(code: string, message: string): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`${message} (${code})`);
  error.code = code;
  return error;
}

/**
 * Positional writev that loops on short writes until every byte is written. A write that makes
 * no progress is reported as ENOSPC, as PostgreSQL assumes when write() sets no errno.
 */
export async function writeAllAt(
  handle: WalFileHandle,
  buffers: readonly Uint8Array[],
  position: number,
): Promise<void> {
  let pending = buffers.filter((buffer) => buffer.byteLength > 0);
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending, position);
    pending = afterShortWrite(pending, bytesWritten);
    position += bytesWritten;
  }
}

/** `writeAllAt` with the handle's blocking writev: returns once every byte is written. */
export function writeAllAtBlocking(
  writevBlocking: (buffers: readonly Uint8Array[], position: number) => number,
  buffers: readonly Uint8Array[],
  position: number,
): void {
  let pending = buffers.filter((buffer) => buffer.byteLength > 0);
  while (pending.length > 0) {
    const bytesWritten = writevBlocking(pending, position);
    pending = afterShortWrite(pending, bytesWritten);
    position += bytesWritten;
  }
}

/** What is left of `pending` after a write of `bytesWritten` bytes. */
function afterShortWrite(pending: Uint8Array[], bytesWritten: number): Uint8Array[] {
  if (bytesWritten <= 0) throw errnoError("ENOSPC", "no space left on device: write made no progress");
  let skip = 0;
  let rest = bytesWritten;
  while (skip < pending.length && rest >= pending[skip]!.byteLength) {
    rest -= pending[skip]!.byteLength;
    skip++;
  }
  const left = skip === 0 ? pending : pending.slice(skip);
  if (rest > 0) left[0] = left[0]!.subarray(rest);
  return left;
}
