/**
 * Running one receiver (or reference program) and measuring it: wall time from spawn to exit, and
 * the child's own CPU time and peak RSS from GNU time (Node cannot read a child's rusage after an
 * asynchronous spawn; /usr/bin/time -o reports exactly that child's getrusage figures).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const GNU_TIME = "/usr/bin/time";

export interface Measurement {
  wallSeconds: number;
  userSeconds: number;
  sysSeconds: number;
  maxRssKb: number;
  stdout: string;
  stderr: string;
}

export class RunFailure extends Error {}

export function requireGnuTime(): void {
  if (!existsSync(GNU_TIME)) {
    throw new Error(
      `${GNU_TIME} is missing (GNU time reports the receivers' CPU and RSS): apt-get install -y time`,
    );
  }
}

/**
 * Runs `program args` under GNU time in its own process group (so a timeout kills the whole tree)
 * and resolves with its figures; rejects on a non-zero exit or a timeout.
 */
export async function runMeasured(
  program: string,
  args: readonly string[],
  options: { timeoutMs: number; env?: NodeJS.ProcessEnv },
): Promise<Measurement> {
  const dir = await mkdtemp(join(tmpdir(), "pgwal-bench-time-"));
  const timeFile = join(dir, "time.txt");
  try {
    const started = performance.now();
    const { code, stdout, stderr, timedOut } = await new Promise<{
      code: number | null;
      stdout: string;
      stderr: string;
      timedOut: boolean;
    }>((resolve, reject) => {
      const child = spawn(GNU_TIME, ["-o", timeFile, "-f", "%U %S %M", program, ...args], {
        detached: true,
        stdio: ["ignore", "pipe", "pipe"],
        env: options.env ?? process.env,
      });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        if (child.pid !== undefined) process.kill(-child.pid, "SIGKILL");
      }, options.timeoutMs);
      child.stdout.on("data", (c: Buffer) => out.push(c));
      child.stderr.on("data", (c: Buffer) => err.push(c));
      child.on("error", (e) => {
        clearTimeout(timer);
        reject(e);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({
          code,
          stdout: Buffer.concat(out).toString("utf8"),
          stderr: Buffer.concat(err).toString("utf8"),
          timedOut,
        });
      });
    });
    const wallSeconds = (performance.now() - started) / 1000;
    const shown = [program, ...args].join(" ");
    if (timedOut)
      throw new RunFailure(`${shown}: timed out after ${options.timeoutMs} ms\n${stderr.slice(-2000)}`);
    if (code !== 0) throw new RunFailure(`${shown}: exit code ${code}\n${stderr.slice(-2000)}`);
    const figures = (await readFile(timeFile, "utf8")).trim().split("\n").pop() ?? "";
    const [user, sys, rss] = figures.split(" ").map(Number);
    if (user === undefined || sys === undefined || rss === undefined || [user, sys, rss].some(Number.isNaN)) {
      throw new RunFailure(`cannot read GNU time output "${figures}" for ${shown}`);
    }
    return { wallSeconds, userSeconds: user, sysSeconds: sys, maxRssKb: rss, stdout, stderr };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) return { median: Number.NaN, min: Number.NaN, max: Number.NaN, values: [] };
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, values: [...values] };
}
