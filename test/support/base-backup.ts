/**
 * Base backups without pg_basebackup (the embedded PostgreSQL packages ship none), by PostgreSQL's
 * documented low-level API: a non-exclusive backup started and stopped in ONE held session
 * (pg_backup_start/pg_backup_stop from 15, pg_start_backup(…, false)/pg_stop_backup(false, …) before),
 * the data directory copied while it is in progress, then backup_label (and tablespace_map when there
 * are tablespaces) written into the copy from what the stop function returned.
 */
import type { Dirent } from "node:fs";
import { chmod, copyFile, mkdir, readdir, readlink, stat, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { isRoot, lookupServerUser, runCommand } from "./run.js";
import { connectForSql, type SqlTarget } from "./sql-client.js";

/** The server a backup is taken from: where its files are, its major, how to reach it over SQL. */
export interface BackupSource {
  dataDir: string;
  major: number;
  sqlTarget(): SqlTarget;
}

export interface LowLevelBackupOptions {
  /** Backup label (shows up in backup_label and the server log). */
  label: string;
  /**
   * Copy the WAL from the backup's start to its end segment out of the source's pg_wal into the
   * copy (like pg_basebackup -X fetch), so it starts without any archive. Default false (-X none:
   * recovery must get that WAL from restore_command).
   */
  includeWal?: boolean;
  /** Passed to the stop function: wait until the server archived the backup's WAL (archive_mode only). */
  waitForArchive?: boolean;
}

export interface LowLevelBackup {
  /** LSN where the backup ended, as the stop function returned it. */
  stopLsn: string;
  /** WAL segment holding the backup's start (from backup_label). */
  startWalFile: string;
  /** WAL segment holding stopLsn. */
  stopWalFile: string;
  /** The backup_label text written into the copy. */
  labelFile: string;
}

/**
 * Takes a base backup of the running `source` into `targetDir` (must not exist yet). The copy is
 * owned by the server OS user when running as root; recovery settings are the caller's business.
 */
export async function takeLowLevelBackup(
  source: BackupSource,
  targetDir: string,
  options: LowLevelBackupOptions,
): Promise<LowLevelBackup> {
  const modern = source.major >= 15;
  const label = sqlLiteral(options.label);
  const wait = options.waitForArchive ? "true" : "false";
  // The backup belongs to this session: it must stay open from start to stop.
  const connection = await connectForSql(source.sqlTarget());
  let backup: LowLevelBackup;
  try {
    // fast = true: an immediate checkpoint instead of a spread one.
    await connection.query(
      modern ? `SELECT pg_backup_start(${label}, true)` : `SELECT pg_start_backup(${label}, true, false)`,
    );
    await copyDataDirectory(source.dataDir, targetDir);
    const [stop] = await connection.query(
      modern
        ? `SELECT lsn, labelfile, spcmapfile, pg_walfile_name(lsn) FROM pg_backup_stop(${wait})`
        : `SELECT lsn, labelfile, spcmapfile, pg_walfile_name(lsn) FROM pg_stop_backup(false, ${wait})`,
    );
    const [stopLsn, labelFile, spcmapFile, stopWalFile] = stop?.rows[0] ?? [];
    const startWalFile = /^START WAL LOCATION: .* \(file ([0-9A-F]{24})\)$/m.exec(labelFile ?? "")?.[1];
    if (!stopLsn || !labelFile || !stopWalFile || !startWalFile) {
      throw new Error(`unexpected answer from the backup stop: ${JSON.stringify(stop?.rows)}`);
    }
    backup = { stopLsn, startWalFile, stopWalFile, labelFile };
    // Written only now: a backup_label in the copy is what makes its recovery start at the backup's
    // checkpoint rather than at whatever pg_control said when the copy read it.
    await writeFile(join(targetDir, "backup_label"), labelFile, { mode: 0o600 });
    if (spcmapFile) await writeFile(join(targetDir, "tablespace_map"), spcmapFile, { mode: 0o600 });
  } finally {
    // Ending the session also aborts a backup left running by an error.
    await connection.close();
  }
  if (options.includeWal) {
    await copyBackupWal(source.dataDir, targetDir, backup.startWalFile, backup.stopWalFile);
  }
  await chownTreeToServerUser(targetDir);
  return backup;
}

/** A string as an SQL literal. */
function sqlLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/**
 * Top-level entries of a data dir that a base backup leaves out: the running server's own files
 * (the docs name postmaster.pid and postmaster.opts), and files that would change the copy's recovery.
 */
const BACKUP_SKIPPED_FILES = new Set([
  "postmaster.pid",
  "postmaster.opts",
  "backup_label",
  "backup_label.old",
  "tablespace_map",
  "standby.signal",
  "recovery.signal",
]);
/**
 * Folders copied empty: pg_wal (the docs require it; recovery gets WAL from the archive or the
 * stream), and those whose contents the server makes anew at start (the docs allow omitting them).
 */
const BACKUP_EMPTIED_DIRS = new Set([
  "pg_wal",
  "pg_replslot",
  "pg_stat_tmp",
  "pg_dynshmem",
  "pg_notify",
  "pg_serial",
  "pg_snapshots",
  "pg_subtrans",
]);

/**
 * Copies a running server's data dir: modes kept, files that vanish meanwhile skipped (the server
 * keeps working during a backup; replay of the backup's WAL repairs whatever the copy caught mid-write).
 */
async function copyDataDirectory(source: string, target: string): Promise<void> {
  const copyDir = async (from: string, to: string, topLevel: boolean): Promise<void> => {
    await mkdir(to, { mode: (await stat(from)).mode & 0o777 });
    let entries: Dirent[];
    try {
      entries = await readdir(from, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const entry of entries) {
      const name = entry.name;
      if (topLevel && BACKUP_SKIPPED_FILES.has(name)) continue;
      // Relation cache init files and temporary files are rebuilt or useless after a restore.
      if (name === "pg_internal.init" || name.startsWith("pgsql_tmp")) continue;
      const src = join(from, name);
      const dst = join(to, name);
      try {
        if (entry.isDirectory()) {
          if (topLevel && BACKUP_EMPTIED_DIRS.has(name)) {
            await mkdir(dst, { mode: (await stat(src)).mode & 0o777 });
          } else {
            await copyDir(src, dst, false);
          }
        } else if (entry.isSymbolicLink()) {
          await symlink(await readlink(src), dst);
        } else if (entry.isFile()) {
          await copyFile(src, dst);
          await chmod(dst, (await stat(src)).mode & 0o777);
        }
      } catch (error) {
        if (!isMissing(error)) throw error;
      }
    }
  };
  await copyDir(source, target, true);
  await mkdir(join(target, "pg_wal", "archive_status"), { recursive: true, mode: 0o700 });
}

/** Copies the WAL segments a base backup needs (startFile to stopFile) and all history files. */
async function copyBackupWal(
  sourceDataDir: string,
  targetDataDir: string,
  startFile: string,
  stopFile: string,
): Promise<void> {
  const from = join(sourceDataDir, "pg_wal");
  const to = join(targetDataDir, "pg_wal");
  const needed = (await readdir(from)).filter(
    (name) =>
      /^[0-9A-F]{8}\.history$/.test(name) ||
      (/^[0-9A-F]{24}$/.test(name) && name >= startFile && name <= stopFile),
  );
  if (!needed.includes(startFile)) throw new Error(`WAL segment ${startFile} left pg_wal during the backup`);
  for (const name of needed) {
    await copyFile(join(from, name), join(to, name));
    await chmod(join(to, name), 0o600);
  }
}

/** Gives a whole tree to the server OS user when running as root. */
export async function chownTreeToServerUser(path: string): Promise<void> {
  if (!isRoot()) return;
  const { uid, gid } = await lookupServerUser();
  await runCommand("chown", ["-R", `${uid}:${gid}`, path], { timeoutMs: 60_000 });
}

function isMissing(error: unknown): boolean {
  return Reflect.get(Object(error), "code") === "ENOENT";
}
