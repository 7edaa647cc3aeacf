/**
 * One run of each scenario: catch-up (pgwal or pg_receivewal, fsync or --no-sync, over one of the
 * connection paths in links.ts), the discard-only limit, the dd disk reference, and a pgbench run
 * against a synchronous standby (or none), unpinned or with the receiver on a CPU of its own.
 * Every receiver run is verified against the server's pg_wal before its figures count.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, open, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { formatLsn, type Lsn, parseLsn, segmentNumberOf } from "../src/lsn.js";
import { walFileName } from "../src/wal/names.js";
import type { PgCluster } from "../test/support/cluster.js";
import { TEST_USERS } from "../test/support/cluster.js";
import { cleanEnv, runCommand } from "../test/support/run.js";
import { pinned, pinServer, RECEIVER_CPU, SERVER_CPU } from "./cpu-pinning.js";
import { type CatchUpMode, type Link, linkNamed, setServerTls } from "./links.js";
import { runMeasured } from "./measure.js";
import { BENCH_DIST_DIR, receiverCommand, type Tool } from "./receivers.js";
import { verifyArchive } from "./verify.js";

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

export interface BenchContext {
  cluster: PgCluster;
  pgwalCli: boolean;
  /** The Node.js binary pgwal runs under. */
  node: string;
  timeline: number;
  segmentSize: number;
  /** First byte of the catch-up WAL (segment start of the slots' restart position). */
  start: Lsn;
  /** Where catch-up runs stop (a segment boundary after pg_switch_wal). */
  endpos: Lsn;
  /** Timeout for one catch-up run. */
  runTimeoutMs: number;
}

export interface ThroughputRun {
  scenario: string;
  tool: string;
  round: number;
  bytes: number;
  wallSeconds: number;
  mibPerSecond: number;
  cpuSecondsPerGib: number;
  /** The receiver's own CPU (user time), without the kernel's work of writing. */
  userCpuSecondsPerGib: number;
  peakRssMib: number;
  /** Discard runs: the walsender's CPU over the run, in cores (1 = one core busy all the time). */
  walsenderCores?: number;
  problems: string[];
}

export interface PgbenchRun {
  scenario: string;
  tool: string;
  round: number;
  tps: number;
  latencyMs: number;
  problems: string[];
}

function range(ctx: BenchContext): { firstSegment: bigint; endSegment: bigint } {
  return {
    firstSegment: segmentNumberOf(ctx.start, ctx.segmentSize),
    endSegment: segmentNumberOf(ctx.endpos, ctx.segmentSize),
  };
}

function segmentNames(ctx: BenchContext): string[] {
  const { firstSegment, endSegment } = range(ctx);
  const names: string[] = [];
  for (let seg = firstSegment; seg < endSegment; seg++)
    names.push(walFileName(ctx.timeline, seg, ctx.segmentSize));
  return names;
}

/** Reads the catch-up WAL once so every run starts with the server's WAL in the page cache. */
export async function warmServerWal(ctx: BenchContext): Promise<void> {
  const buffer = Buffer.allocUnsafe(4 * MIB);
  for (const name of segmentNames(ctx)) {
    const file = await open(ctx.cluster.walPath(name), "r");
    try {
      while ((await file.read(buffer, 0, buffer.length)).bytesRead > 0) {
        // reading is the point
      }
    } finally {
      await file.close();
    }
  }
}

function throughput(
  scenario: string,
  tool: string,
  round: number,
  bytes: number,
  m: { wallSeconds: number; userSeconds: number; sysSeconds: number; maxRssKb: number },
  problems: string[],
): ThroughputRun {
  return {
    scenario,
    tool,
    round,
    bytes,
    wallSeconds: m.wallSeconds,
    mibPerSecond: bytes / MIB / m.wallSeconds,
    cpuSecondsPerGib: (m.userSeconds + m.sysSeconds) / (bytes / GIB),
    userCpuSecondsPerGib: m.userSeconds / (bytes / GIB),
    peakRssMib: m.maxRssKb / 1024,
    problems,
  };
}

/** Drops a slot; its walsender may take a moment to notice the receiver left, so retry briefly. */
async function dropSlot(cluster: PgCluster, slot: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await cluster.sql(
        `SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '${slot}';`,
      );
      return;
    } catch (error) {
      if (attempt >= 50) throw error;
      await sleep(200);
    }
  }
}

/** `--slot S --endpos X --no-loop` from start to exit, then verification. */
export async function catchUpRun(
  ctx: BenchContext,
  tool: Tool,
  mode: CatchUpMode,
  link: Link,
  slot: string,
  round: number,
): Promise<ThroughputRun> {
  const archive = await mkdtemp(join(tmpdir(), `pgwal-bench-${tool}-`));
  try {
    await setServerTls(ctx.cluster, link.serverTls);
    await warmServerWal(ctx);
    const command = receiverCommand(
      tool,
      {
        directory: archive,
        // Only the bootstrap superuser has a Unix-socket replication line in the test pg_hba.conf.
        host: link.unixSocket ? ctx.cluster.socketDir : ctx.cluster.host,
        port: ctx.cluster.port,
        user: link.unixSocket ? TEST_USERS.superuser.name : TEST_USERS.trust.name,
        slot,
        endpos: formatLsn(ctx.endpos),
        noSync: mode === "no-sync",
      },
      { binDir: ctx.cluster.binDir, pgwalCli: ctx.pgwalCli, node: ctx.node },
    );
    const m = await runMeasured(command.program, command.args, {
      timeoutMs: ctx.runTimeoutMs,
      env: cleanEnv(link.env),
    });
    const problems = await verifyArchive(archive, join(ctx.cluster.dataDir, "pg_wal"), {
      timeline: ctx.timeline,
      segmentSize: ctx.segmentSize,
      ...range(ctx),
    });
    return throughput(
      `catch-up ${mode}, ${link.label}`,
      tool,
      round,
      Number(ctx.endpos - ctx.start),
      m,
      problems,
    );
  } finally {
    await rm(archive, { recursive: true, force: true });
    await dropSlot(ctx.cluster, slot);
  }
}

/**
 * pgwal's protocol layer reading the same stream and discarding it: the receiving ceiling, in
 * plaintext (sslmode=disable) or over TLS.
 */
export async function discardRun(
  ctx: BenchContext,
  link: Link,
  slot: string,
  round: number,
): Promise<ThroughputRun> {
  try {
    await setServerTls(ctx.cluster, link.serverTls);
    await warmServerWal(ctx);
    const m = await runMeasured(
      ctx.node,
      [
        join(BENCH_DIST_DIR, "discard-receiver.js"),
        ctx.cluster.host,
        String(ctx.cluster.port),
        TEST_USERS.trust.name,
        slot,
        formatLsn(ctx.endpos),
      ],
      { timeoutMs: ctx.runTimeoutMs, env: cleanEnv(link.env) },
    );
    const problems: string[] = [];
    let bytes = 0;
    let walsenderCores: number | undefined;
    try {
      const result = JSON.parse(m.stdout.trim()) as {
        start: string;
        end: string;
        bytes: number;
        walsenderCores?: number;
      };
      bytes = result.bytes;
      walsenderCores = result.walsenderCores;
      if (parseLsn(result.start) !== ctx.start)
        problems.push(`started at ${result.start}, expected ${formatLsn(ctx.start)}`);
      if (parseLsn(result.end) < ctx.endpos)
        problems.push(`stopped at ${result.end} before ${formatLsn(ctx.endpos)}`);
      if (BigInt(result.bytes) !== parseLsn(result.end) - parseLsn(result.start))
        problems.push("byte count does not match positions");
    } catch (error) {
      problems.push(`unreadable result "${m.stdout.trim()}": ${String(error)}`);
    }
    return {
      ...throughput(
        `discard-only (pgwal protocol), ${link.label}`,
        "pgwal",
        round,
        bytes || Number(ctx.endpos - ctx.start),
        m,
        problems,
      ),
      walsenderCores,
    };
  } finally {
    await dropSlot(ctx.cluster, slot);
  }
}

/** Per segment: zero-fill + fsync, dir fsync, write + fsync, rename, dir fsync: the disk's own figure. */
const DD_SCRIPT = `set -e
src=$1; dst=$2; mb=$3; shift 3
for f in "$@"; do
  dd if=/dev/zero of="$dst/$f.partial" bs=1M count="$mb" conv=fsync status=none
  sync "$dst"
  dd if="$src/$f" of="$dst/$f.partial" bs=1M conv=notrunc,fsync status=none
  mv "$dst/$f.partial" "$dst/$f"
  sync "$dst"
done
`;

export async function ddRun(ctx: BenchContext, round: number): Promise<ThroughputRun> {
  const work = await mkdtemp(join(tmpdir(), "pgwal-bench-dd-"));
  const archive = join(work, "archive");
  const script = join(work, "dd.sh");
  try {
    await writeFile(script, DD_SCRIPT);
    await runCommand("mkdir", [archive]);
    await warmServerWal(ctx);
    const m = await runMeasured(
      "/bin/bash",
      [
        script,
        join(ctx.cluster.dataDir, "pg_wal"),
        archive,
        String(ctx.segmentSize / MIB),
        ...segmentNames(ctx),
      ],
      { timeoutMs: ctx.runTimeoutMs },
    );
    const problems = await verifyArchive(archive, join(ctx.cluster.dataDir, "pg_wal"), {
      timeline: ctx.timeline,
      segmentSize: ctx.segmentSize,
      ...range(ctx),
    });
    return throughput("dd, same write pattern", "dd", round, Number(ctx.endpos - ctx.start), m, problems);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

// ---- synchronous standby ------------------------------------------------------------------------

export const SYNC_APPLICATION_NAME = "pgwal_bench_sync";

async function setSynchronousStandbyNames(cluster: PgCluster, names: string): Promise<void> {
  await cluster.sql(`ALTER SYSTEM SET synchronous_standby_names = '${names}'; SELECT pg_reload_conf();`);
  // pg_reload_conf only signals; wait until the setting is visible to new sessions.
  for (let i = 0; i < 100; i++) {
    if ((await cluster.sql("SHOW synchronous_standby_names")) === names) return;
    await sleep(50);
  }
  throw new Error(`synchronous_standby_names did not become '${names}'`);
}

function pgbenchArgs(cluster: PgCluster): string[] {
  return ["-h", cluster.host, "-p", String(cluster.port), "-U", TEST_USERS.superuser.name];
}

/** pgbench -i (scale 10) in the postgres database; done before the catch-up WAL is generated. */
export async function initPgbench(cluster: PgCluster): Promise<void> {
  await runCommand(
    join(cluster.binDir, "pgbench"),
    ["-i", "-q", "-s", "10", ...pgbenchArgs(cluster), "postgres"],
    {
      timeoutMs: 300_000,
    },
  );
}

async function runPgbench(
  cluster: PgCluster,
  seconds: number,
  clients: number,
  pinToServerCpu: boolean,
): Promise<{ tps: number; latencyMs: number }> {
  const program = join(cluster.binDir, "pgbench");
  const command = pinToServerCpu ? pinned(SERVER_CPU, program, []) : { program, args: [] };
  const { stdout } = await runCommand(
    command.program,
    [
      ...command.args,
      "-N",
      "-c",
      String(clients),
      "-j",
      String(Math.min(clients, 4)),
      "-T",
      String(seconds),
      "-n",
      ...pgbenchArgs(cluster),
      "postgres",
    ],
    { timeoutMs: (seconds + 120) * 1000 },
  );
  const tps = /tps = ([\d.]+)/.exec(stdout);
  const latency = /latency average = ([\d.]+) ms/.exec(stdout);
  if (!tps || !latency) throw new Error(`cannot read pgbench output:\n${stdout}`);
  return { tps: Number(tps[1]), latencyMs: Number(latency[1]) };
}

async function waitForSyncStandby(
  cluster: PgCluster,
  child: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`receiver exited early (${child.exitCode}): ${stderr().slice(-2000)}`);
    const state = await cluster.sql(
      `SELECT sync_state FROM pg_stat_replication WHERE application_name = '${SYNC_APPLICATION_NAME}'`,
    );
    if (state === "sync") return;
    await sleep(100);
  }
  throw new Error(`receiver never became the synchronous standby: ${stderr().slice(-2000)}`);
}

async function stopChild(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null) return child.exitCode;
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  child.kill("SIGINT");
  const code = await Promise.race([exited, sleep(30_000).then(() => "timeout" as const)]);
  if (code === "timeout") {
    child.kill("SIGKILL");
    await exited;
    return null;
  }
  return code;
}

/**
 * pgbench -N against the primary while `tool` is its only synchronous standby (or with none), both
 * receivers with default connection settings. `pin`: the receiver runs on a CPU of its own and the
 * server and pgbench share the other, as a standby on its own host would; unpinned, everything
 * competes for every CPU.
 */
export async function syncRun(
  ctx: BenchContext,
  tool: Tool | "none",
  round: number,
  pgbench: { seconds: number; clients: number },
  pin: boolean,
): Promise<PgbenchRun> {
  const cluster = ctx.cluster;
  const setting = pin
    ? `receiver pinned to CPU ${RECEIVER_CPU}, server and pgbench to CPU ${SERVER_CPU}`
    : "unpinned";
  await setServerTls(cluster, linkNamed("default").serverTls);
  await pinServer(cluster, pin ? SERVER_CPU : undefined);
  if (tool === "none") {
    try {
      await setSynchronousStandbyNames(cluster, "");
      const r = await runPgbench(cluster, pgbench.seconds, pgbench.clients, pin);
      return {
        scenario: `pgbench, no standby, ${pin ? `server and pgbench pinned to CPU ${SERVER_CPU}` : "unpinned"}`,
        tool: "none",
        round,
        ...r,
        problems: [],
      };
    } finally {
      if (pin) await pinServer(cluster, undefined);
    }
  }
  const slot = `bench_sync_${tool === "pgwal" ? "pgwal" : "pgrw"}_${pin ? "pinned" : "free"}_${round}`;
  const archive = await mkdtemp(join(tmpdir(), `pgwal-bench-sync-${tool}-`));
  let child: ChildProcess | undefined;
  try {
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true);`);
    const slotStart = parseLsn(
      await cluster.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`),
    );
    await setSynchronousStandbyNames(cluster, SYNC_APPLICATION_NAME);
    const command = receiverCommand(
      tool,
      {
        directory: archive,
        host: cluster.host,
        port: cluster.port,
        user: TEST_USERS.trust.name,
        slot,
        synchronous: true,
        applicationName: SYNC_APPLICATION_NAME,
      },
      { binDir: cluster.binDir, pgwalCli: ctx.pgwalCli, node: ctx.node },
    );
    const launched = pin ? pinned(RECEIVER_CPU, command.program, command.args) : command;
    const errors: Buffer[] = [];
    child = spawn(launched.program, launched.args, {
      stdio: ["ignore", "ignore", "pipe"],
      env: cleanEnv(linkNamed("default").env),
    });
    child.stderr?.on("data", (c: Buffer) => errors.push(c));
    const stderr = () => Buffer.concat(errors).toString("utf8");
    await waitForSyncStandby(cluster, child, stderr);
    const r = await runPgbench(cluster, pgbench.seconds, pgbench.clients, pin);
    const flushed = parseLsn(
      await cluster.sql(
        `SELECT flush_lsn FROM pg_stat_replication WHERE application_name = '${SYNC_APPLICATION_NAME}'`,
      ),
    );
    // Commits must not wait for a receiver that is about to stop.
    await setSynchronousStandbyNames(cluster, "");
    const code = await stopChild(child);
    const problems: string[] = [];
    if (code !== 0) problems.push(`receiver exit code ${code}: ${stderr().slice(-1000)}`);
    problems.push(
      ...(await verifyArchive(archive, join(cluster.dataDir, "pg_wal"), {
        timeline: ctx.timeline,
        segmentSize: ctx.segmentSize,
        firstSegment: segmentNumberOf(slotStart, ctx.segmentSize),
        endSegment: segmentNumberOf(flushed, ctx.segmentSize),
      })),
    );
    return { scenario: `pgbench, synchronous standby, ${setting}`, tool, round, ...r, problems };
  } finally {
    if (child && child.exitCode === null) child.kill("SIGKILL");
    await setSynchronousStandbyNames(cluster, "");
    if (pin) await pinServer(cluster, undefined);
    await rm(archive, { recursive: true, force: true });
    await dropSlot(cluster, slot);
  }
}
