/**
 * The proof that an archive is worth keeping: a base backup (pg_basebackup -X none) plus pgwal's
 * archive recover a new cluster with restore_command = 'pgwal restore %f %p --directory …', and
 * every committed row is there — including rows that exist only in the partial segment.
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
import { startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { findFreePort } from "../support/free-port.js";
import { chownToServerUser, runCommand } from "../support/run.js";

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
        await runCommand(
          join(cluster.binDir, "pg_basebackup"),
          [
            "-h",
            cluster.socketDir,
            "-p",
            String(cluster.port),
            "-U",
            TEST_USERS.superuser.name,
            "-X",
            "none",
            "-c",
            "fast",
            "-D",
            backup,
          ],
          {
            asServerUser: true,
            timeoutMs: 120_000,
          },
        );
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
          const psql = (sql: string) =>
            runCommand(
              join(cluster.binDir, "psql"),
              [
                "-XAtq",
                "-h",
                work,
                "-p",
                String(port),
                "-U",
                TEST_USERS.superuser.name,
                "-d",
                "postgres",
                "-c",
                sql,
              ],
              {
                asServerUser: true,
              },
            ).then((r) => r.stdout.trim());
          for (let i = 0; (await psql("SELECT pg_is_in_recovery()")) === "t"; i++) {
            assert.ok(i < 600, "recovery did not finish");
            await sleep(100);
          }
          assert.equal(await psql(`SELECT count(*) || ':' || max(id) FROM ${table}`), `${id}:${id}`);
          assert.equal(
            await psql(`SELECT note FROM ${table} WHERE id = ${id}`),
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
