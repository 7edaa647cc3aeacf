/**
 * Timeline history files ("TTTTTTTT.history") in the archive. Never compressed (restore_command
 * and recovery look for the plain name), written under a ".tmp" name first and renamed once
 * durable, as pg_receivewal does.
 */
import { constants } from "node:fs";
import { join } from "node:path";
import {
  fsyncCall,
  OPEN_FRESH,
  renameDurably,
  storageCall,
  type WalFileSystem,
  writeAllAt,
} from "./fsync.js";
import { historyFileName } from "./names.js";

export interface HistoryFileTarget {
  directory: string;
  noSync: boolean;
  fileMode: number;
  fileSystem: WalFileSystem;
}

export async function historyFileExists(target: HistoryFileTarget, timeline: number): Promise<boolean> {
  const path = join(target.directory, historyFileName(timeline));
  try {
    const handle = await target.fileSystem.open(path, constants.O_RDONLY);
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return false;
    return storageCall("open", path, () => Promise.reject(error));
  }
}

export async function writeHistoryFileDurably(
  target: HistoryFileTarget,
  timeline: number,
  content: Buffer,
): Promise<void> {
  const finalPath = join(target.directory, historyFileName(timeline));
  const tempPath = `${finalPath}.tmp`;
  const handle = await storageCall("create", tempPath, () =>
    target.fileSystem.open(tempPath, OPEN_FRESH, target.fileMode),
  );
  try {
    await storageCall("write", tempPath, () => writeAllAt(handle, [content], 0));
    if (!target.noSync) await fsyncCall("fsync", tempPath, () => handle.sync());
  } finally {
    await storageCall("close", tempPath, () => handle.close());
  }
  await renameDurably(target.fileSystem, tempPath, finalPath, target.noSync);
}
