/**
 * CPU pinning for the synchronous-standby scenario. A real standby runs on its own host; on one
 * machine the nearest thing is the receiver alone on one CPU while the server and pgbench share
 * the other (`taskset`). Unpinned, the same scenario measures the receiver's CPU cost under
 * contention instead: every CPU-second it uses is taken from the backends.
 */
import { existsSync } from "node:fs";
import { readdir, readFile } from "node:fs/promises";
import os from "node:os";
import { join } from "node:path";
import type { PgCluster } from "../test/support/cluster.js";
import { runCommand } from "../test/support/run.js";

export const TASKSET = "/usr/bin/taskset";
/** The CPU the receiver gets to itself. */
export const RECEIVER_CPU = "1";
/** The CPU the server and pgbench share. */
export const SERVER_CPU = "0";

/** Every CPU the bench may use, as a taskset list. */
function allCpus(): string {
  return `0-${os.cpus().length - 1}`;
}

/** `program args` run on `cpus` only. */
export function pinned(
  cpus: string,
  program: string,
  args: readonly string[],
): { program: string; args: string[] } {
  return { program: TASKSET, args: ["-c", cpus, program, ...args] };
}

/** The postmaster and all its children (backends are forked from it later and inherit its affinity). */
async function serverPids(cluster: PgCluster): Promise<number[]> {
  const postmaster = Number((await readFile(join(cluster.dataDir, "postmaster.pid"), "utf8")).split("\n")[0]);
  if (!Number.isInteger(postmaster) || postmaster <= 0) throw new Error("cannot read the postmaster's PID");
  const pids = [postmaster];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = await readFile(`/proc/${entry}/stat`, "utf8");
      // The parent PID is the second field after the parenthesised command name.
      const parent = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (parent === postmaster) pids.push(Number(entry));
    } catch {
      // The process ended meanwhile.
    }
  }
  return pids;
}

/** Restricts the running server (every process of it) to `cpus`; `undefined` gives it every CPU again. */
export async function pinServer(cluster: PgCluster, cpus: string | undefined): Promise<void> {
  for (const pid of await serverPids(cluster)) {
    try {
      await runCommand(TASKSET, ["-a", "-p", "-c", cpus ?? allCpus(), String(pid)]);
    } catch (error) {
      // A backend that exited between listing and pinning is fine; the postmaster must be pinned.
      if (pid === (await serverPids(cluster))[0]) throw error;
    }
  }
}

/** Pinning needs two CPUs and taskset. */
export function canPin(): boolean {
  return os.cpus().length >= 2 && existsSync(TASKSET);
}
