/**
 * pgwal's state outside an archive (hook progress, upload progress, the time map): where it lives
 * and how it is written. Kept out of the archive so pg_receivewal-layout consumers never see it.
 */
import { createHash } from "node:crypto";
import { mkdir, open, realpath, rename } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";
import { StorageError } from "./errors.js";
import { nodeFileSystem } from "./wal/fsync.js";

/** systemd's $STATE_DIRECTORY, else $XDG_STATE_HOME/pgwal, else ~/.local/state/pgwal. */
export function stateDirectory(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.STATE_DIRECTORY?.split(":")[0] ??
    path.join(env.XDG_STATE_HOME ?? path.join(homedir(), ".local", "state"), "pgwal")
  );
}

/**
 * `<kind>-<id>.json` in the state directory, `id` derived from the archive's real path (and
 * `qualifier`, e.g. an upload target), so every archive has its own file whatever path leads to it.
 */
export async function perArchiveStateFile(
  kind: string,
  directory: string,
  env: NodeJS.ProcessEnv = process.env,
  qualifier?: string,
): Promise<string> {
  const archive = await realpath(directory).catch(() => path.resolve(directory));
  const key = qualifier === undefined ? archive : `${archive}\n${qualifier}`;
  const id = createHash("sha256").update(key).digest("hex").slice(0, 16);
  return path.join(stateDirectory(env), `${kind}-${id}.json`);
}

/**
 * Replaces `file` with `content` so that a crash or power cut leaves the old or the new content,
 * never a mix, and the new one survives once this resolves: directories created on the way are
 * fsynced in their parents, the content goes to a temporary file that is fsynced, renamed over
 * `file`, and the directory is fsynced. The temporary name is per process: two pgwal commands
 * refreshing the same file must not share one.
 */
export async function writeStateFileDurably(
  file: string,
  content: string,
  fsyncDirectory: (directory: string) => Promise<void> = nodeFileSystem.fsyncDirectory,
): Promise<void> {
  const directory = path.dirname(file);
  try {
    const firstCreated = await mkdir(directory, { recursive: true, mode: 0o700 });
    if (firstCreated !== undefined) {
      for (let created = directory; ; created = path.dirname(created)) {
        await fsyncDirectory(path.dirname(created));
        if (created === firstCreated || path.dirname(created) === created) break;
      }
    }
    const temp = `${file}.${process.pid}.tmp`;
    const handle = await open(temp, "w", 0o600);
    try {
      await handle.writeFile(content);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temp, file);
    await fsyncDirectory(directory);
  } catch (error) {
    throw new StorageError("write", file, error);
  }
}
