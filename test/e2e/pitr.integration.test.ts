/**
 * The proof that an archive is worth keeping: a base backup without WAL (PostgreSQL's low-level
 * backup API, like pg_basebackup -X none) plus pgwal's archive recover a new cluster with
 * restore_command = 'pgwal restore %f %p --directory …', and every committed row is there —
 * including rows that exist only in the partial segment. Needs no pg_basebackup and no psql, so it
 * runs on every major the harness has server binaries for.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { appendFile, chmod, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { parseLsn } from "../../src/lsn.js";
import { takeLowLevelBackup } from "../support/base-backup.js";
import { startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { findFreePort } from "../support/free-port.js";
import { chownToServerUser, runCommand } from "../support/run.js";
import { runSql } from "../support/sql-client.js";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const pgwalBin = join(root, "bin", "pgwal");
const cluster = await startSharedCluster({ name: "pitr", walSegmentSizeMb: 1 });

async function chownTree(path: string): Promise<void> {
  await chownToServerUser(path);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) await chownTree(child);
    else await chownToServerUser(child);
  }
}

function startReceiver(dir: string, slot: string, compress: string): ChildProcess {
  return spawn(
    process.execPath,
    [
      pgwalBin,
      "receive",
      "-D",
      dir,
      "-S",
      slot,
      "-s",
      "1",
      "-Z",
      compress,
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      TEST_USERS.trust.name,
    ],
    { stdio: ["ignore", "ignore", "inherit"], env: { ...process.env, PGSSLMODE: "disable" } },
  );
}

describe("point-in-time recovery from a base backup and pgwal's archive", () => {
  for (const compress of ["none", "lz4"]) {
    test(`every committed row comes back (${compress} archive, rows in the .partial too)`, {
      timeout: 180_000,
    }, async () => {
      const work = await mkdtemp(join(tmpdir(), `pgwal-pitr-${compress}-`));
      const archive = join(work, "archive");
      const backup = join(work, "backup");
      await runCommand("mkdir", ["-m", "0700", archive]);
      await chownToServerUser(work);
      const slot = `pitr_${compress}`;
      await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
      const table = `pitr_${compress}`;
      await cluster.sql(`CREATE TABLE ${table} (id int PRIMARY KEY, note text)`);
      const receiver = startReceiver(archive, slot, compress);
      try {
        // Before PostgreSQL 15 a run on an empty archive starts at the server's position (no
        // READ_REPLICATION_SLOT): the backup may start only once pgwal streams, or its first
        // segment could lie before the archive's.
        for (let i = 0; ; i++) {
          const active = await cluster.sql(
            `SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`,
          );
          if (active === "t") break;
          assert.ok(i < 300, "pgwal never started streaming");
          await sleep(100);
        }
        // No WAL in the backup (pg_wal copied empty): recovery must get all of it from pgwal's archive.
        const backupTaken = await takeLowLevelBackup(cluster, backup, { label: `pitr ${compress}` });
        // Markers across several segments, then a tail that stays inside the open (partial) segment.
        let id = 0;
        for (let batch = 0; batch < 6; batch++) {
          await cluster.sql(
            `INSERT INTO ${table} SELECT g, repeat('m', 500) FROM generate_series(${id + 1}, ${id + 1500}) g`,
          );
          id += 1500;
        }
        await cluster.sql("SELECT pg_switch_wal()");
        await cluster.sql(`INSERT INTO ${table} VALUES (${id + 1}, 'only in the partial segment')`);
        id += 1;
        const committedUpTo = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
        // Wait until pgwal reports it durable (the slot follows pgwal's flush position).
        for (let i = 0; ; i++) {
          const restart = await cluster.sql(
            `SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`,
          );
          if (restart !== "" && parseLsn(restart) >= committedUpTo) break;
          assert.ok(i < 300, "pgwal never flushed the last commit");
          await sleep(100);
        }
        receiver.kill("SIGTERM");
        const code = await new Promise((done) => receiver.once("exit", done));
        assert.equal(code, 0, "pgwal exits 0 on SIGTERM");
        const files = await readdir(archive);
        assert.ok(
          files.some((f) => f.endsWith(".partial")),
          `a partial segment holds the tail: ${files.join(" ")}`,
        );
        assert.ok(
          files.some((f) => f.startsWith(backupTaken.startWalFile)),
          `the archive holds the backup's first segment ${backupTaken.startWalFile}: ${files.join(" ")}`,
        );

        // The recovered server runs as postgres and its restore_command reads the archive.
        await chownTree(archive);
        const port = await findFreePort();
        const restoreCommand = `${process.execPath} ${pgwalBin} restore %f %p --directory ${archive}`;
        await appendFile(
          join(backup, "postgresql.auto.conf"),
          `\nport = ${port}\nunix_socket_directories = '${work}'\nrestore_command = '${restoreCommand}'\narchive_mode = off\n`,
        );
        await writeFile(join(backup, "recovery.signal"), "");
        await chownTree(backup);
        await chmod(backup, 0o700);
        const logFile = join(work, "recovered.log");
        await runCommand(
          join(cluster.binDir, "pg_ctl"),
          ["-D", backup, "-l", logFile, "-w", "-t", "120", "start"],
          {
            asServerUser: true,
            timeoutMs: 150_000,
          },
        );
        try {
          const query = (sql: string) =>
            runSql({ host: work, port, user: TEST_USERS.superuser.name, database: "postgres" }, sql);
          for (let i = 0; (await query("SELECT pg_is_in_recovery()")) === "t"; i++) {
            assert.ok(i < 600, "recovery did not finish");
            await sleep(100);
          }
          assert.equal(await query(`SELECT count(*) || ':' || max(id) FROM ${table}`), `${id}:${id}`);
          assert.equal(
            await query(`SELECT note FROM ${table} WHERE id = ${id}`),
            "only in the partial segment",
          );
        } finally {
          await runCommand(join(cluster.binDir, "pg_ctl"), ["-D", backup, "-m", "immediate", "stop"], {
            asServerUser: true,
          }).catch(() => undefined);
        }
      } finally {
        receiver.kill("SIGKILL");
        await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`).catch(() => undefined);
        await rm(work, { recursive: true, force: true });
      }
    });
  }
});
