/**
 * Real PostgreSQL clusters for integration tests.
 *
 * Each cluster lives in its own temp folder (data dir, unix socket, server log), listens on 127.0.0.1
 * only, on a port nobody else used a moment ago, with TLS on and one role per authentication method
 * (see test-users.ts). When this process is root, every server program runs as the `postgres` OS user.
 * Servers never outlive the test process: destroy() stops them, and an exit/signal hook kills leftovers.
 */
import { spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { appendFile, chmod, copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { chownTreeToServerUser, takeLowLevelBackup } from "./base-backup.js";
import { findFreePort } from "./free-port.js";
import { findPgBinDir, findSameMajorProgram } from "./pg-binaries.js";
import { chownToServerUser, cleanEnv, isRoot, lookupServerUser, runCommand, SERVER_OS_USER } from "./run.js";
import { runSql, type SqlTarget } from "./sql-client.js";
import { createUsersSql, pgHbaConf, TEST_USERS } from "./test-users.js";
import { TLS_FIXTURES } from "./tls-fixtures.js";

export { findPgBinDir, findSameMajorProgram } from "./pg-binaries.js";
export { type SqlTarget, splitSqlStatements } from "./sql-client.js";
export { TEST_USERS } from "./test-users.js";
export { clientKeyPath, TLS_FIXTURES } from "./tls-fixtures.js";

export interface ClusterOptions {
  /** wal_segment_size in MB for initdb --wal-segsize (default 16; tests use 1 too). */
  walSegmentSizeMb?: number;
  /** Extra postgresql.conf settings. */
  settings?: Record<string, string | number>;
  /** PostgreSQL major to use (env PGWAL_TEST_PG_MAJOR, else the default binaries). */
  major?: number;
  /** Name used in temp-dir names and logs. */
  name?: string;
}

type StopMode = "fast" | "immediate" | "smart";

interface ClusterLayout {
  name: string;
  baseDir: string;
  binDir: string;
  major: number;
  walSegmentSize: number;
}

/** Settings file written per cluster; a standby gets its own copy after pg_basebackup copied the primary's. */
const LOCAL_CONF = "pgwal_local.conf";
const START_ATTEMPTS = 5;
const SERVER_TIMEOUT_S = 60;

/** Clusters whose server may be running, for the exit/signal hook. */
const liveClusters = new Set<PgCluster>();

export class PgCluster {
  readonly host = "127.0.0.1" as const;
  readonly name: string;
  /** Temp folder holding dataDir, the unix socket and the log. */
  readonly baseDir: string;
  readonly socketDir: string;
  readonly dataDir: string;
  readonly binDir: string;
  readonly major: number;
  readonly logFile: string;
  /** Bytes. */
  readonly walSegmentSize: number;
  private currentPort = 0;
  private destroyed = false;
  private readonly standbys = new Set<PgCluster>();

  private constructor(layout: ClusterLayout) {
    this.name = layout.name;
    this.baseDir = layout.baseDir;
    this.socketDir = layout.baseDir;
    this.dataDir = join(layout.baseDir, "data");
    this.logFile = join(layout.baseDir, "server.log");
    this.binDir = layout.binDir;
    this.major = layout.major;
    this.walSegmentSize = layout.walSegmentSize;
    registerExitHook();
    liveClusters.add(this);
  }

  get port(): number {
    return this.currentPort;
  }

  /** initdb, configure, start, create the TEST_USERS roles. */
  static async start(options: ClusterOptions = {}): Promise<PgCluster> {
    const segmentMb = options.walSegmentSizeMb ?? 16;
    if (
      !Number.isInteger(segmentMb) ||
      segmentMb < 1 ||
      segmentMb > 1024 ||
      (segmentMb & (segmentMb - 1)) !== 0
    ) {
      throw new Error(`walSegmentSizeMb must be a power of two from 1 to 1024, got ${segmentMb}`);
    }
    const { binDir, major } = await findPgBinDir(options.major);
    const name = safeName(options.name ?? "cluster");
    const cluster = new PgCluster({
      name,
      baseDir: await makeBaseDir(name),
      binDir,
      major,
      walSegmentSize: segmentMb * 1024 * 1024,
    });
    try {
      await cluster.initdb(segmentMb);
      await cluster.writeConfig(options.settings ?? {});
      await cluster.installCertificates();
      await cluster.startOnFreePort();
      await cluster.sql(createUsersSql());
      return cluster;
    } catch (error) {
      await cluster.destroy({ failed: true });
      throw error;
    }
  }

  /**
   * Runs SQL as the superuser over the unix socket and returns what `psql -XAtq -v ON_ERROR_STOP=1`
   * would print, trimmed: statement by statement, every row of every statement, columns joined by "|".
   */
  async sql(query: string, options: { database?: string } = {}): Promise<string> {
    return runSql(this.sqlTarget(options.database), query);
  }

  /** Where sql() connects: the unix socket, as the bootstrap superuser. */
  sqlTarget(database = "postgres"): SqlTarget {
    return { host: this.socketDir, port: this.port, user: TEST_USERS.superuser.name, database };
  }

  /** Path of a file in pg_wal. */
  walPath(fileName: string): string {
    return join(this.dataDir, "pg_wal", fileName);
  }

  /**
   * Writes at least `megabytes` MB of WAL (table rows of ~1 kB that TOAST does not compress), then
   * switches to a new segment. Returns pg_current_wal_insert_lsn() afterwards.
   */
  async generateWal(megabytes: number): Promise<string> {
    const rows = Math.max(1, Math.ceil((megabytes * 1024 * 1024) / 1000));
    return this.sql(
      [
        "SET client_min_messages = warning;",
        "CREATE TABLE IF NOT EXISTS pgwal_wal_filler (id bigserial PRIMARY KEY, payload text NOT NULL);",
        "INSERT INTO pgwal_wal_filler (payload)",
        `  SELECT repeat(md5(g::text || random()::text), 30) FROM generate_series(1, ${rows}) AS g;`,
        "DO $$ BEGIN PERFORM pg_switch_wal(); END $$;",
        "SELECT pg_current_wal_insert_lsn();",
      ].join("\n"),
    );
  }

  /** pg_ctl stop; if that fails while the server still runs, kills it. No-op when it is not running. */
  async stop(mode: StopMode = "fast"): Promise<void> {
    if (postmasterPid(this.dataDir) === undefined) return;
    try {
      await this.pgCtl(["stop", "-m", mode]);
    } catch (error) {
      if (postmasterPid(this.dataDir) === undefined) return;
      process.stderr.write(
        `[pgwal test cluster ${this.name}] pg_ctl stop failed, killing: ${String(error)}\n`,
      );
      await killPostmaster(this.dataDir);
    }
  }

  /** Starts the server again on the same port after stop(). */
  async startAgain(): Promise<void> {
    await this.startServer();
  }

  async restart(mode: "fast" | "immediate" = "fast"): Promise<void> {
    await this.stop(mode);
    await this.startAgain();
  }

  /**
   * Creates a streaming standby of this cluster on its own port. The base backup comes from
   * pg_basebackup (-R -X stream, no slot) when one of this server's major is installed, else from a
   * low-level backup over SQL (see sqlBaseBackup); `baseBackup` forces either way.
   */
  async createStandby(
    options: { name?: string; baseBackup?: "auto" | "pg_basebackup" | "sql" } = {},
  ): Promise<PgCluster> {
    const name = safeName(options.name ?? `${this.name}-standby`);
    const method = options.baseBackup ?? "auto";
    const pgBasebackup = method === "sql" ? undefined : await findSameMajorProgram(this, "pg_basebackup");
    if (method === "pg_basebackup" && pgBasebackup === undefined) {
      throw new Error(`no pg_basebackup of PostgreSQL ${this.major} is installed`);
    }
    const standby = new PgCluster({
      name,
      baseDir: await makeBaseDir(name),
      binDir: this.binDir,
      major: this.major,
      walSegmentSize: this.walSegmentSize,
    });
    this.standbys.add(standby);
    try {
      if (pgBasebackup !== undefined) {
        await runCommand(
          pgBasebackup,
          ["-D", standby.dataDir, "-R", "-X", "stream", "-c", "fast", "-N", ...this.socketArgs()],
          { asServerUser: true, cwd: standby.baseDir, timeoutMs: 180_000 },
        );
      } else {
        await this.sqlBaseBackup(standby);
      }
      // The copy has our pgwal_local.conf (port, socket dir) and keys: give the standby its own.
      await standby.installCertificates();
      await standby.startOnFreePort();
      await standby.waitFor(
        "SELECT status FROM pg_stat_wal_receiver",
        (status) => status === "streaming",
        "the standby to stream from its primary",
      );
      return standby;
    } catch (error) {
      this.standbys.delete(standby);
      await standby.destroy({ failed: true });
      throw error;
    }
  }

  /**
   * A base backup without pg_basebackup: the low-level API (base-backup.ts) with the WAL from the
   * backup's start to its end copied along, then standby.signal and primary_conninfo written as
   * pg_basebackup -R would.
   */
  private async sqlBaseBackup(standby: PgCluster): Promise<void> {
    // No waiting for archiving: the standby gets its WAL from pg_wal and streaming.
    await takeLowLevelBackup(this, standby.dataDir, {
      label: `pgwal standby ${standby.name}`,
      includeWal: true,
    });
    await writeFile(join(standby.dataDir, "standby.signal"), "");
    const conninfo = `host=${this.socketDir} port=${this.port} user=${TEST_USERS.superuser.name} application_name=${standby.name}`;
    await appendFile(
      join(standby.dataDir, "postgresql.auto.conf"),
      `primary_conninfo = ${confValue(conninfo)}\n`,
    );
    await chownTreeToServerUser(standby.dataDir);
  }

  /** pg_ctl promote -w, then waits until pg_is_in_recovery() is false. */
  async promote(): Promise<void> {
    await this.pgCtl(["promote"]);
    await this.waitFor("SELECT pg_is_in_recovery()", (value) => value === "f", "the promotion to finish");
  }

  /** Stops the server and removes the data dir; when `failed` is true keeps dataDir/log and prints where. */
  async destroy(options: { failed?: boolean } = {}): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const standby of this.standbys) await standby.destroy(options);
    this.standbys.clear();
    await this.stop("immediate").catch(() => killPostmaster(this.dataDir));
    // Should the server somehow survive, the exit hook still knows about it.
    if (postmasterPid(this.dataDir) === undefined) liveClusters.delete(this);
    if (options.failed) {
      process.stderr.write(
        `[pgwal test cluster ${this.name}] kept for inspection: data ${this.dataDir}, log ${this.logFile}\n` +
          (await logTail(this.logFile, 30)),
      );
    } else {
      await rm(this.baseDir, { recursive: true, force: true });
    }
  }

  /** The last lines of the server log (for error messages). */
  async logTail(lines = 30): Promise<string> {
    return logTail(this.logFile, lines);
  }

  private socketArgs(): string[] {
    return ["-h", this.socketDir, "-p", String(this.port), "-U", TEST_USERS.superuser.name];
  }

  private pgCtl(args: string[]): Promise<unknown> {
    return runCommand(
      join(this.binDir, "pg_ctl"),
      [...args, "-D", this.dataDir, "-w", "-t", String(SERVER_TIMEOUT_S)],
      {
        asServerUser: true,
        cwd: this.baseDir,
        timeoutMs: (SERVER_TIMEOUT_S + 30) * 1000,
      },
    );
  }

  private async initdb(segmentMb: number): Promise<void> {
    await runCommand(
      join(this.binDir, "initdb"),
      [
        "-D",
        this.dataDir,
        "-U",
        TEST_USERS.superuser.name,
        "--auth=trust",
        "--encoding=UTF8",
        "--locale=C",
        `--wal-segsize=${segmentMb}`,
        "--no-sync",
        // 18 turned data checksums on by default; off keeps the WAL of every major alike (checksums
        // log hint-bit changes as full-page images, which moves where generated WAL ends).
        ...(this.major >= 18 ? ["--no-data-checksums"] : []),
      ],
      { asServerUser: true, cwd: this.baseDir, timeoutMs: 120_000 },
    );
  }

  private async writeConfig(settings: Record<string, string | number>): Promise<void> {
    const base: Record<string, string | number> = {
      listen_addresses: "127.0.0.1",
      wal_level: "replica",
      max_wal_senders: 10,
      max_replication_slots: 10,
      ssl: "on",
      ssl_cert_file: "server.crt",
      ssl_key_file: "server.key",
      ssl_ca_file: "root.crt",
      log_connections: "on",
      log_replication_commands: "on",
      logging_collector: "off",
      log_line_prefix: "%m [%p] %q%u@%d ",
      hot_standby: "on",
      ...(this.major >= 13 ? { wal_keep_size: "128MB" } : { wal_keep_segments: 8 }),
      ...settings,
    };
    const lines = Object.entries(base).map(([key, value]) => `${key} = ${confValue(value)}`);
    await appendFile(
      join(this.dataDir, "postgresql.conf"),
      `\n# --- pgwal test harness ---\n${lines.join("\n")}\ninclude_if_exists '${LOCAL_CONF}'\n`,
    );
    await writeFile(join(this.dataDir, "pg_hba.conf"), pgHbaConf());
  }

  /** Copies the server certificate, key (0600, owned by the server user) and CA into the data dir. */
  private async installCertificates(): Promise<void> {
    const files: Array<[string, string, number]> = [
      [TLS_FIXTURES.serverCert, "server.crt", 0o644],
      [TLS_FIXTURES.serverKey, "server.key", 0o600],
      [TLS_FIXTURES.caCert, "root.crt", 0o644],
    ];
    for (const [source, target, mode] of files) {
      const path = join(this.dataDir, target);
      await rm(path, { force: true });
      await copyFile(source, path);
      await chmod(path, mode);
      await chownToServerUser(path);
    }
  }

  /** Picks a free port and starts; another process may grab the port first, so retry a few times. */
  private async startOnFreePort(): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      this.currentPort = await findFreePort();
      const local = join(this.dataDir, LOCAL_CONF);
      await writeFile(local, `port = ${this.port}\nunix_socket_directories = ${confValue(this.socketDir)}\n`);
      await chownToServerUser(local);
      try {
        await this.startServer();
        return;
      } catch (error) {
        const log = await readFile(this.logFile, "utf8").catch(() => "");
        if (attempt >= START_ATTEMPTS || !/could not bind|address already in use/i.test(log)) throw error;
        await this.stop("immediate");
        await rm(this.logFile, { force: true });
      }
    }
  }

  private async startServer(): Promise<void> {
    try {
      await this.pgCtl(["start", "-l", this.logFile]);
    } catch (error) {
      throw new Error(`${String(error)}\n--- ${this.logFile} ---\n${await logTail(this.logFile, 40)}`, {
        cause: error,
      });
    }
  }

  private async waitFor(query: string, done: (value: string) => boolean, what: string): Promise<void> {
    const deadline = Date.now() + SERVER_TIMEOUT_S * 1000;
    let last = "";
    while (Date.now() < deadline) {
      try {
        last = await this.sql(query);
        if (done(last)) return;
      } catch (error) {
        last = String(error);
      }
      await sleep(100);
    }
    throw new Error(`timed out waiting for ${what} (${this.name}; last answer: ${last})`);
  }
}

/**
 * Starts one cluster for a whole test file and registers node:test hooks: `after()` destroys it, keeping
 * its data dir and log when a test in the file failed. Meant for module top level
 * (`const cluster = await startSharedCluster()`); inside a `before()` hook it works too.
 */
export async function startSharedCluster(options: ClusterOptions = {}): Promise<PgCluster> {
  let cluster: PgCluster | undefined;
  let failed = false;
  let finishedTests = 0;
  const finish = async (): Promise<void> => {
    failed ||= process.exitCode !== undefined && process.exitCode !== 0;
    await cluster?.destroy({ failed });
  };
  afterEach((context) => {
    finishedTests++;
    // TestContext.passed exists at run time in Node 20 but is not in @types/node 20.
    if (Reflect.get(context, "passed") === false) failed = true;
  });
  after(async () => {
    // Registered from inside a before() hook, node:test runs this right after that hook, before any
    // test: then wait until the file is done (the event loop drains) instead.
    if (finishedTests === 0) {
      process.once("beforeExit", () => void finish());
      return;
    }
    await finish();
  });
  cluster = await PgCluster.start(options);
  return cluster;
}

function confValue(value: string | number): string {
  return typeof value === "number"
    ? String(value)
    : `'${value.replaceAll("\\", "\\\\").replaceAll("'", "''")}'`;
}

function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9_-]+/g, "-").slice(0, 24) || "cluster";
}

/** A temp folder for one cluster, owned by the server user (it holds the socket and the log). */
async function makeBaseDir(name: string): Promise<string> {
  await lookupServerUser();
  const baseDir = await mkdtemp(join(tmpdir(), `pgwal-${name}-`));
  // Unix socket paths are limited to ~107 bytes.
  if (join(baseDir, ".s.PGSQL.65535.lock").length > 100) {
    await rm(baseDir, { recursive: true, force: true });
    throw new Error(`temp dir path too long for a unix socket: ${baseDir} (set TMPDIR to something shorter)`);
  }
  await chmod(baseDir, 0o755);
  await chownToServerUser(baseDir);
  return baseDir;
}

async function logTail(logFile: string, lines: number): Promise<string> {
  try {
    const text = await readFile(logFile, "utf8");
    return `${text.trimEnd().split("\n").slice(-lines).join("\n")}\n`;
  } catch {
    return "(no server log)\n";
  }
}

/** PID of the running postmaster of dataDir, if its pid file names a live postgres process. */
function postmasterPid(dataDir: string): number | undefined {
  let pid: number;
  try {
    pid = Number.parseInt(readFileSync(join(dataDir, "postmaster.pid"), "utf8").split("\n")[0] ?? "", 10);
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    // A stale pid file may name a reused pid: only a postgres process counts.
    const command = readFileSync(`/proc/${pid}/comm`, "utf8").trim();
    return command === "postgres" || command === "postmaster" ? pid : undefined;
  } catch {
    return undefined;
  }
}

function signalQuietly(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // Already gone.
  }
}

/** SIGQUIT (immediate shutdown), then SIGKILL of the postmaster's process group if it lingers. */
async function killPostmaster(dataDir: string): Promise<void> {
  const pid = postmasterPid(dataDir);
  if (pid === undefined) return;
  signalQuietly(pid, "SIGQUIT");
  for (let i = 0; i < 50 && postmasterPid(dataDir) === pid; i++) await sleep(100);
  if (postmasterPid(dataDir) === pid) {
    // pg_ctl starts the postmaster as a process-group leader, so its backends share the group.
    signalQuietly(-pid, "SIGKILL");
    signalQuietly(pid, "SIGKILL");
  }
}

/**
 * Synchronous last-chance stop at process exit: leaves no server behind, whatever the tests did. Temp
 * dirs of clusters nobody destroyed are removed after a clean exit and kept (for inspection) otherwise.
 */
function stopAllNow(keepDirs: boolean): void {
  for (const cluster of liveClusters) {
    const pid = postmasterPid(cluster.dataDir);
    if (pid !== undefined) {
      const pgCtl = join(cluster.binDir, "pg_ctl");
      const args = ["stop", "-m", "immediate", "-w", "-t", "10", "-D", cluster.dataDir];
      const [file, argv] = isRoot()
        ? ["runuser", ["-u", SERVER_OS_USER, "--", pgCtl, ...args]]
        : [pgCtl, args];
      spawnSync(file, argv, { stdio: "ignore", timeout: 15_000, env: cleanEnv() });
      if (postmasterPid(cluster.dataDir) === pid) {
        signalQuietly(-pid, "SIGKILL");
        signalQuietly(pid, "SIGKILL");
      }
      process.stderr.write(`[pgwal test cluster ${cluster.name}] was still running at exit; stopped it\n`);
    }
    if (keepDirs) {
      process.stderr.write(`[pgwal test cluster ${cluster.name}] not destroyed; kept ${cluster.baseDir}\n`);
    } else {
      rmSync(cluster.baseDir, { recursive: true, force: true });
    }
  }
  liveClusters.clear();
}

let exitHookRegistered = false;

function registerExitHook(): void {
  if (exitHookRegistered) return;
  exitHookRegistered = true;
  process.on("exit", (code) => stopAllNow(code !== 0));
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = (): void => {
      stopAllNow(true);
      // When nobody else handles the signal, die of it as we would have without this hook.
      if (process.listenerCount(signal) === 1) {
        process.removeListener(signal, onSignal);
        process.kill(process.pid, signal);
      }
    };
    process.on(signal, onSignal);
  }
}
