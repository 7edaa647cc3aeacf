/**
 * What a user sees when something is wrong: one clear error line, a non-zero exit, no stack trace
 * and never the password. Also the drop-in path: a symlink named pg_receivewal run by another OS
 * user (here `postgres`) with stdin closed.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { PgCluster, startSharedCluster, TEST_USERS, TLS_FIXTURES } from "../support/cluster.js";
import { chownToServerUser, isRoot, SERVER_OS_USER } from "../support/run.js";
import { type CliRun, PGWAL_BIN, runPgwal } from "./cli-harness.js";

let cluster: PgCluster;
let work: string;
before(async () => {
  cluster = await startSharedCluster({ name: "user-errors", walSegmentSizeMb: 1 });
  work = await mkdtemp(join(tmpdir(), "pgwal-user-errors-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const SECRET = "Sup3r-Secret-pw";
/** util-linux's runuser lives in /usr/sbin, which a test runner's PATH may lack. */
const RUNUSER = existsSync("/usr/sbin/runuser") ? "/usr/sbin/runuser" : "runuser";

/** One `error:` line on stderr, exit 1, no stack trace, no secret anywhere. */
function assertOneClearError(run: CliRun, message: RegExp): void {
  const output = `${run.stdout}\n${run.stderr}`;
  assert.equal(run.status, 1, `exit status ${run.status}; stderr:\n${run.stderr}`);
  const errorLines = run.stderr.split("\n").filter((line) => /\berror: /.test(line) && !line.startsWith("{"));
  assert.equal(errorLines.length, 1, `expected one error line, got:\n${run.stderr}`);
  assert.match(errorLines[0]!, message);
  assert.doesNotMatch(output, /^\s+at .+:\d+:\d+\)?$/m, "no stack trace");
  assert.ok(!output.includes(SECRET), "the password must not appear");
}

function connArgs(user: string = TEST_USERS.scram.name): string[] {
  return ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", user];
}

async function freshDir(name: string): Promise<string> {
  const dir = join(work, name);
  await mkdir(dir, { mode: 0o700 });
  return dir;
}

describe("one clear line for each user error", () => {
  test("a malformed connection string", async () => {
    const run = await runPgwal([
      "receive",
      "-D",
      await freshDir("conninfo"),
      "-d",
      `host=127.0.0.1 password=${SECRET} port`,
    ]);
    assertOneClearError(run, /missing "=" after "port"|invalid connection option|connection/);
  });

  test("a malformed end position", async () => {
    const run = await runPgwal(["receive", "-D", await freshDir("lsn"), "-E", "zz/1", ...connArgs()]);
    assertOneClearError(run, /could not parse end position "zz\/1"/);
  });

  test("a directory that does not exist", async () => {
    const run = await runPgwal(["receive", "-D", join(work, "missing"), ...connArgs(TEST_USERS.trust.name)], {
      env: { PGSSLMODE: "disable" },
    });
    assertOneClearError(run, /could not (open|access) directory/);
  });

  test("a wrong password (from PGPASSWORD)", async () => {
    const run = await runPgwal(["receive", "-D", await freshDir("wrongpw"), ...connArgs()], {
      env: { PGPASSWORD: SECRET },
    });
    assertOneClearError(run, /password authentication failed for user "repl_scram"/);
  });

  test("a .pgpass readable by others is ignored, and says so", async () => {
    const passfile = join(work, "pgpass.conf");
    await writeFile(passfile, `*:*:*:${TEST_USERS.scram.name}:${SECRET}\n`);
    await chmod(passfile, 0o644);
    const run = await runPgwal(["receive", "-D", await freshDir("pgpass"), "-w", ...connArgs()], {
      env: { PGPASSFILE: passfile },
    });
    assertOneClearError(run, /no password supplied/);
    assert.match(run.stderr, /has group or world access/);
  });

  test("sslmode=require against a server without TLS", async () => {
    const plain = await PgCluster.start({
      name: "user-errors-nossl",
      walSegmentSizeMb: 1,
      settings: { ssl: "off" },
    });
    try {
      const run = await runPgwal(
        [
          "receive",
          "-D",
          await freshDir("nossl"),
          "-h",
          "127.0.0.1",
          "-p",
          String(plain.port),
          "-U",
          TEST_USERS.trust.name,
        ],
        { env: { PGSSLMODE: "require" } },
      );
      assertOneClearError(run, /server does not support SSL, but SSL was required/);
    } finally {
      await plain.destroy();
    }
  });

  test("verify-full against the wrong host name", async () => {
    const run = await runPgwal(["receive", "-D", await freshDir("verifyfull"), ...connArgs()], {
      env: {
        PGSSLMODE: "verify-full",
        PGSSLROOTCERT: TLS_FIXTURES.caCert,
        PGPASSWORD: TEST_USERS.scram.password,
      },
    });
    assertOneClearError(run, /does not match host name|certificate/);
  });

  test("a directory holding another cluster's WAL", async () => {
    const dir = await freshDir("othercluster");
    const other = await PgCluster.start({ name: "user-errors-other", walSegmentSizeMb: 1 });
    try {
      const endpos = await other.sql("SELECT pg_current_wal_flush_lsn()");
      const first = await runPgwal(
        [
          "receive",
          "-D",
          dir,
          "-E",
          endpos,
          "-n",
          "-h",
          "127.0.0.1",
          "-p",
          String(other.port),
          "-U",
          TEST_USERS.trust.name,
        ],
        { env: { PGSSLMODE: "disable" } },
      );
      assert.equal(first.status, 0, first.stderr);
    } finally {
      await other.destroy();
    }
    const run = await runPgwal(["receive", "-D", dir, "-n", ...connArgs(TEST_USERS.trust.name)], {
      env: { PGSSLMODE: "disable" },
    });
    assertOneClearError(run, /holds WAL of database system \d+/);
  });
});

describe("drop-in by name, run by another OS user", () => {
  test("a pg_receivewal symlink run as postgres with stdin closed streams and exits 0", async (t) => {
    if (!isRoot()) return t.skip("needs root to run as another user");
    const bin = join(work, "bin");
    await mkdir(bin);
    await symlink(PGWAL_BIN, join(bin, "pg_receivewal"));
    const archive = await freshDir("as-postgres");
    await chownToServerUser(work);
    await chownToServerUser(archive);
    const endpos = await cluster.sql("SELECT pg_current_wal_flush_lsn()");
    const args = ["-D", archive, "-E", endpos, "-n", "-v", ...connArgs(TEST_USERS.trust.name)];
    const run = await new Promise<CliRun>((resolve) => {
      const child = spawn(
        RUNUSER,
        [
          "-u",
          SERVER_OS_USER,
          "--",
          "env",
          `PATH=${join(process.execPath, "..")}:/usr/bin:/bin`,
          "PGSSLMODE=disable",
          join(bin, "pg_receivewal"),
          ...args,
        ],
        { stdio: ["ignore", "pipe", "pipe"], cwd: "/" },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.on("data", (c: Buffer) => {
        stdout += c.toString();
      });
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr }));
    });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /finished segment|stopped|streaming/);
    const version = await new Promise<string>((resolve) => {
      const child = spawn(RUNUSER, ["-u", SERVER_OS_USER, "--", join(bin, "pg_receivewal"), "--version"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: `${join(process.execPath, "..")}:/usr/bin:/bin` },
      });
      let out = "";
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
      });
      child.on("close", () => resolve(out.trim()));
    });
    assert.match(version, /^pg_receivewal \(PostgreSQL\) 18\.\d+ \(pgwal \d+\.\d+\.\d+\)$/);
  });
});
