/**
 * The off-machine archive is worth keeping: a base backup without WAL plus the bucket alone (the
 * local archive deleted) recover a new cluster with
 * restore_command = 'pgwal restore %f %p --directory s3://BUCKET/PREFIX', and every committed row is
 * there, including rows that exist only in the uploaded `.partial`. With --upload-holds-slot the
 * slot reaching the last commit proves the bucket holds it.
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
import { openObjectStore } from "../../src/store/open-store.js";
import { takeLowLevelBackup } from "../support/base-backup.js";
import { startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { findFreePort } from "../support/free-port.js";
import { startSharedRgw } from "../support/rgw.js";
import { chownToServerUser, runCommand } from "../support/run.js";
import { runSql } from "../support/sql-client.js";

const root = resolve(fileURLToPath(new URL("../../..", import.meta.url)));
const pgwalBin = join(root, "bin", "pgwal");
const rgw = await startSharedRgw();
const cluster = await startSharedCluster({ name: "pitr-s3", walSegmentSizeMb: 1 });

async function chownTree(path: string): Promise<void> {
  await chownToServerUser(path);
  for (const entry of await readdir(path, { withFileTypes: true })) {
    const child = join(path, entry.name);
    if (entry.isDirectory()) await chownTree(child);
    else await chownToServerUser(child);
  }
}

function startReceiver(dir: string, slot: string, compress: string, url: string, work: string): ChildProcess {
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
      "--target",
      url,
      "--upload-holds-slot",
      "--partial-upload-interval=1",
      "--upload-state-file",
      join(work, "uploads.json"),
    ],
    {
      stdio: ["ignore", "ignore", "inherit"],
      env: { PATH: process.env.PATH, HOME: work, PGSSLMODE: "disable", ...rgw.awsEnv() },
    },
  );
}

describe("point-in-time recovery from a base backup and the bucket alone", () => {
  for (const compress of ["none", "lz4"]) {
    test(`every committed row comes back (${compress}, rows only in the uploaded .partial too)`, {
      timeout: 180_000,
    }, async () => {
      const work = await mkdtemp(join(tmpdir(), `pgwal-pitr-s3-${compress}-`));
      const archive = join(work, "archive");
      const backup = join(work, "backup");
      await runCommand("mkdir", ["-m", "0700", archive]);
      await chownToServerUser(work);
      const bucket = await rgw.createBucket(`pitr-${compress}`);
      const url = `s3://${bucket}/cluster/wal`;
      const slot = `pitr_s3_${compress}`;
      await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
      const table = `pitr_s3_${compress}`;
      await cluster.sql(`CREATE TABLE ${table} (id int PRIMARY KEY, note text)`);
      const receiver = startReceiver(archive, slot, compress, url, work);
      try {
        for (let i = 0; ; i++) {
          const active = await cluster.sql(
            `SELECT active FROM pg_replication_slots WHERE slot_name = '${slot}'`,
          );
          if (active === "t") break;
          assert.ok(i < 300, "pgwal never started streaming");
          await sleep(100);
        }
        const backupTaken = await takeLowLevelBackup(cluster, backup, { label: `pitr s3 ${compress}` });
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
        // --upload-holds-slot: the slot reaches the last commit only once the bucket holds it.
        for (let i = 0; ; i++) {
          const restart = await cluster.sql(
            `SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`,
          );
          if (restart !== "" && parseLsn(restart) >= committedUpTo) break;
          assert.ok(i < 600, "the bucket never got the last commit");
          await sleep(100);
        }
        receiver.kill("SIGTERM");
        const code = await new Promise((done) => receiver.once("exit", done));
        assert.equal(code, 0, "pgwal exits 0 on SIGTERM");
        const store = await openObjectStore(url, { credentials: rgw.credentials }, rgw.awsEnv());
        const names = (await store.list()).map((o) => o.name);
        store.destroy();
        assert.ok(
          names.some((n) => n.endsWith(".partial")),
          `a partial object holds the tail: ${names.join(" ")}`,
        );
        assert.ok(
          names.some((n) => n.startsWith(backupTaken.startWalFile)),
          `the bucket holds the backup's first segment ${backupTaken.startWalFile}: ${names.join(" ")}`,
        );
        // The machine is gone: only the bucket is left.
        await rm(archive, { recursive: true, force: true });

        const port = await findFreePort();
        const env = Object.entries(rgw.awsEnv())
          .map(([key, value]) => `${key}=${value}`)
          .join(" ");
        const restoreCommand = `env ${env} ${process.execPath} ${pgwalBin} restore %f %p --directory ${url}`;
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
