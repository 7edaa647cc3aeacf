/**
 * `npm run bench`: pgwal and pg_receivewal side by side on the same WAL from one throwaway server,
 * alternating A B per round, every run verified. Prints a table and writes a JSON summary; exits 1
 * when any run failed or any verification found a problem.
 */
import { execFileSync } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import os from "node:os";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { formatLsn, parseLsn, segmentStartOf } from "../src/lsn.js";
import { PgCluster } from "../test/support/cluster.js";
import { canPin } from "./cpu-pinning.js";
import { type CatchUpMode, LINKS, type Link, linkNamed } from "./links.js";
import { requireGnuTime } from "./measure.js";
import { type BenchOptions, parseBenchArgs, USAGE } from "./options.js";
import { REPO_ROOT, TOOLS, type Tool } from "./receivers.js";
import { formatTable, summarize } from "./report.js";
import {
  type BenchContext,
  catchUpRun,
  ddRun,
  discardRun,
  initPgbench,
  type PgbenchRun,
  syncRun,
  type ThroughputRun,
} from "./scenarios.js";

function log(message: string): void {
  process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${message}\n`);
}

function catchUpSlot(tool: Tool, link: Link, mode: CatchUpMode, round: number): string {
  return `bench_${tool === "pgwal" ? "pgwal" : "pgrw"}_${link.name}_${mode === "fsync" ? "fsync" : "nosync"}_${round}`;
}

function discardSlot(link: Link, round: number): string {
  return `bench_discard_${link.name}_${round}`;
}

/** The discard-only ceiling in plaintext, and over TLS when TLS is measured. */
function discardLinks(options: BenchOptions): Link[] {
  return [linkNamed("disable"), ...(options.links.includes("tls") ? [linkNamed("tls")] : [])];
}

function catchUpLinks(options: BenchOptions): Link[] {
  return LINKS.filter((link) => options.links.includes(link.name));
}

/** `node --version` of the binary pgwal runs under. */
function nodeVersion(node: string): string {
  return execFileSync(node, ["--version"], { encoding: "utf8", timeout: 30_000 }).trim();
}

async function startCluster(options: BenchOptions): Promise<PgCluster> {
  const catchUpRuns = catchUpLinks(options).reduce((n, link) => n + link.modes.length * TOOLS.length, 0);
  const catchUpSlots = options.rounds * (catchUpRuns + discardLinks(options).length);
  const walMb = Math.ceil(options.gib * 1024);
  return PgCluster.start({
    name: "bench",
    walSegmentSizeMb: options.walSegmentSizeMb,
    settings: {
      max_replication_slots: catchUpSlots + 8,
      max_wal_senders: 10,
      // The slots keep the WAL anyway; a large max_wal_size keeps checkpoints out of the runs.
      max_wal_size: `${Math.max(1024, walMb * 2)}MB`,
      min_wal_size: "80MB",
      checkpoint_timeout: "1h",
      shared_buffers: "256MB",
      wal_buffers: "16MB",
      synchronous_commit: "on",
      // Autovacuum of the pgbench tables would add WAL and I/O in the middle of timed runs.
      autovacuum: "off",
      log_connections: "off",
      log_replication_commands: "off",
      // A server without TLS: the default-settings rows then run as libpq's `prefer` does against
      // one ('N' to SSLRequest). The TLS rows turn it on (certificates are installed either way).
      ssl: "off",
    },
  });
}

async function main(): Promise<number> {
  let options: BenchOptions;
  try {
    options = parseBenchArgs(process.argv.slice(2));
  } catch (error) {
    process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n${USAGE}`);
    return 2;
  }
  requireGnuTime();
  let pgwalNode: string;
  try {
    pgwalNode = nodeVersion(options.node);
  } catch (error) {
    process.stderr.write(`bench: cannot run ${options.node} --version: ${String(error)}\n`);
    return 2;
  }
  const failures: string[] = [];
  const throughputRuns: ThroughputRun[] = [];
  const pgbenchRuns: PgbenchRun[] = [];
  const pause = async () => {
    if (options.pauseSeconds > 0) await sleep(options.pauseSeconds * 1000);
  };
  const attempt = async <R extends { problems: string[]; scenario: string; tool: string; round: number }>(
    what: string,
    run: () => Promise<R>,
    into: R[],
  ): Promise<void> => {
    log(`${what} …`);
    try {
      const result = await run();
      into.push(result);
      if (result.problems.length > 0) {
        failures.push(`${what}: verification failed: ${result.problems.join("; ")}`);
        log(`${what}: VERIFICATION FAILED: ${result.problems.slice(0, 5).join("; ")}`);
      } else {
        log(
          `${what}: ok ${JSON.stringify(result, (_k, v: unknown) => (typeof v === "number" ? Number(v.toFixed(3)) : v))}`,
        );
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push(`${what}: ${message}`);
      log(`${what}: FAILED: ${message}`);
    }
    await pause();
  };

  log(`options ${JSON.stringify(options)}`);
  log(`pgwal runs on Node.js ${pgwalNode} (${options.node}); the bench itself on ${process.version}`);
  const cluster = await startCluster(options);
  let ctx: BenchContext | undefined;
  try {
    if (!options.skipSync) {
      log("pgbench -i -s 10");
      await initPgbench(cluster);
    }
    // Every slot first, then the WAL: each run streams exactly the same bytes.
    const slots: string[] = [];
    for (let round = 1; round <= options.rounds; round++) {
      for (const link of catchUpLinks(options)) {
        for (const mode of link.modes)
          for (const tool of TOOLS) slots.push(catchUpSlot(tool, link, mode, round));
      }
      for (const link of discardLinks(options)) slots.push(discardSlot(link, round));
    }
    // A physical slot reserves WAL from the last checkpoint's redo point: checkpoint first, so the
    // slots start where the generated WAL does, not at pgbench -i's load.
    await cluster.sql("CHECKPOINT");
    await cluster.sql(
      slots.map((s) => `SELECT pg_create_physical_replication_slot('${s}', true);`).join("\n"),
    );
    const restart = (
      await cluster.sql("SELECT min(restart_lsn), max(restart_lsn) FROM pg_replication_slots")
    ).split("|");
    const segmentSize = options.walSegmentSizeMb * 1024 * 1024;
    const start = segmentStartOf(parseLsn(restart[0]!), segmentSize);
    if (segmentStartOf(parseLsn(restart[1]!), segmentSize) !== start)
      throw new Error(`slots start in different segments: ${restart.join(" ")}`);
    log(`generating ${options.gib} GiB of WAL`);
    // Full-page writes make the filler's WAL several times its nominal size: top up until enough.
    const target = BigInt(Math.round(options.gib * 1024 ** 3));
    let insertLsn = start;
    while (insertLsn - start < target) {
      const missingMb = Number(target - (insertLsn - start)) / 1024 ** 2;
      insertLsn = parseLsn(await cluster.generateWal(Math.max(8, Math.ceil(missingMb / 6))));
    }
    await cluster.sql("CHECKPOINT");
    const endpos = segmentStartOf(insertLsn, segmentSize);
    const timeline = Number(await cluster.sql("SELECT timeline_id FROM pg_control_checkpoint()"));
    const walBytes = Number(endpos - start);
    log(
      `catch-up WAL ${formatLsn(start)} .. ${formatLsn(endpos)} (${(walBytes / 1024 / 1024).toFixed(0)} MiB)`,
    );
    ctx = {
      cluster,
      pgwalCli: options.pgwalCli,
      node: options.node,
      timeline,
      segmentSize,
      start,
      endpos,
      runTimeoutMs: Math.max(120_000, (walBytes / (1024 * 1024)) * 1000),
    };
    const c = ctx;
    for (let round = 1; round <= options.rounds; round++) {
      for (const link of catchUpLinks(options)) {
        for (const mode of link.modes) {
          for (const tool of TOOLS) {
            await attempt(
              `round ${round} catch-up ${mode} ${link.name} ${tool}`,
              () => catchUpRun(c, tool, mode, link, catchUpSlot(tool, link, mode, round), round),
              throughputRuns,
            );
          }
        }
      }
      for (const link of discardLinks(options)) {
        await attempt(
          `round ${round} discard-only ${link.name}`,
          () => discardRun(c, link, discardSlot(link, round), round),
          throughputRuns,
        );
      }
      await attempt(`round ${round} dd reference`, () => ddRun(c, round), throughputRuns);
    }
    if (!options.skipSync) {
      const pgbench = { seconds: options.pgbenchSeconds, clients: options.pgbenchClients };
      const pinnings = canPin() ? [false, true] : [false];
      if (!canPin())
        log("fewer than 2 CPUs or no taskset: the pinned synchronous-standby scenario is skipped");
      for (let round = 1; round <= options.rounds; round++) {
        for (const pin of pinnings) {
          for (const tool of [...TOOLS, "none" as const]) {
            await attempt(
              `round ${round} synchronous standby ${pin ? "pinned" : "unpinned"} ${tool}`,
              () => syncRun(c, tool, round, pgbench, pin),
              pgbenchRuns,
            );
          }
        }
      }
    }
  } catch (error) {
    failures.push(`setup: ${error instanceof Error ? error.message : String(error)}`);
    log(`setup FAILED: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await cluster.destroy({ failed: failures.length > 0 });
  }

  const rows = summarize(throughputRuns, pgbenchRuns);
  const runtime = `pgwal ran on Node.js ${pgwalNode} (${options.node}), PostgreSQL ${cluster.major}`;
  const table = `${runtime}\n\n${formatTable(rows)}`;
  process.stdout.write(`\n${table}\n`);
  if (failures.length > 0) process.stdout.write(`\nFAILURES:\n${failures.map((f) => `  ${f}`).join("\n")}\n`);

  const jsonPath =
    options.jsonPath ??
    join(REPO_ROOT, "bench", "results", `${new Date().toISOString().replaceAll(":", "-")}.json`);
  const summary = {
    date: new Date().toISOString(),
    options,
    environment: {
      node: process.version,
      pgwalNode: { path: options.node, version: pgwalNode },
      cpus: os.cpus().length,
      cpuModel: os.cpus()[0]?.model,
      memoryGib: os.totalmem() / 1024 ** 3,
      kernel: os.release(),
      postgresMajor: cluster.major,
      pgwalRunner: options.pgwalCli ? "bin/pgwal receive" : "bench/pgwal-driver (WalReceiver)",
    },
    wal: ctx
      ? { start: formatLsn(ctx.start), endpos: formatLsn(ctx.endpos), bytes: Number(ctx.endpos - ctx.start) }
      : null,
    summary: rows,
    runs: { throughput: throughputRuns, pgbench: pgbenchRuns },
    failures,
    table,
  };
  await mkdir(dirname(jsonPath), { recursive: true });
  await writeFile(jsonPath, `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`\nJSON summary: ${jsonPath}\n`);
  return failures.length > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    process.stderr.write(
      `bench: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
    );
    process.exit(1);
  },
);
