/**
 * "A receiver is writing this archive": a lock that `pgwal receive` holds while it runs and that
 * `pgwal cleanup` asks about before it removes anything.
 *
 * The lock is a Linux abstract Unix socket named after the archive directory's device and inode.
 * It needs no file in the archive (pg_receivewal-layout consumers such as Barman move unknown files
 * out of a streaming directory), it is released by the kernel when the holder dies, even by kill -9,
 * so it can never go stale, and it names the same directory whatever path leads to it. Its scope
 * is one host (one network namespace): two hosts sharing an archive over NFS do not see each other.
 */
import { stat } from "node:fs/promises";
import { createConnection, createServer, type Server } from "node:net";
import { storageCall } from "../wal/fsync.js";

export interface ArchiveLock {
  /** Releases the lock (idempotent). */
  release(): Promise<void>;
}

export type LockAttempt = { acquired: true; lock: ArchiveLock } | { acquired: false; holderPid?: number };

async function lockName(directory: string): Promise<string> {
  const stats = await storageCall("stat", directory, () => stat(directory, { bigint: true }));
  return `\0pgwal-archive-lock/${stats.dev.toString(16)}:${stats.ino.toString(16)}`;
}

/**
 * Takes the archive's lock, or reports who holds it. The holder answers every connection with its
 * process id, so a refusal can say which process to look at.
 */
export async function tryLockArchive(directory: string): Promise<LockAttempt> {
  const name = await lockName(directory);
  const server = createServer((socket) => {
    socket.on("error", () => undefined);
    socket.end(`${process.pid}\n`);
  });
  const listening = await new Promise<boolean>((resolve, reject) => {
    server.once("error", (error: NodeJS.ErrnoException) => {
      if (error.code === "EADDRINUSE") resolve(false);
      else reject(error);
    });
    server.listen({ path: name }, () => resolve(true));
  });
  if (!listening) return { acquired: false, holderPid: await askHolderPid(name) };
  // The lock must never be what keeps a finished process alive.
  server.unref();
  return { acquired: true, lock: serverLock(server) };
}

/** Whether a receiver holds the archive's lock now (and its pid when it says). */
export async function archiveLockHolder(directory: string): Promise<{ held: boolean; holderPid?: number }> {
  const attempt = await tryLockArchive(directory);
  if (!attempt.acquired) return { held: true, holderPid: attempt.holderPid };
  await attempt.lock.release();
  return { held: false };
}

function serverLock(server: Server): ArchiveLock {
  let released: Promise<void> | undefined;
  return {
    release() {
      released ??= new Promise((resolve) => server.close(() => resolve()));
      return released;
    },
  };
}

const HOLDER_ANSWER_TIMEOUT_MS = 1000;

function askHolderPid(name: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    let answer = "";
    const socket = createConnection({ path: name });
    const done = (pid: number | undefined) => {
      socket.destroy();
      resolve(pid);
    };
    socket.setTimeout(HOLDER_ANSWER_TIMEOUT_MS, () => done(undefined));
    socket.on("error", () => done(undefined));
    socket.on("data", (chunk) => {
      answer += chunk.toString("latin1");
      if (answer.length > 32) done(undefined);
    });
    socket.on("end", () => {
      const pid = /^(\d{1,10})\n$/.exec(answer)?.[1];
      done(pid === undefined ? undefined : Number(pid));
    });
  });
}
