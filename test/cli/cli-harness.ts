/**
 * Running `node bin/pgwal …` from integration tests: a minimal environment (no PG* leaks from the
 * runner), output collected, a hard timeout, and hooks to watch stderr while it runs.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const PROJECT_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
export const PGWAL_BIN = join(PROJECT_ROOT, "bin", "pgwal");

export interface CliRun {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** The executable to run (default bin/pgwal; e.g. a symlink named pg_receivewal). */
  script?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  onStderr?: (stderr: string, child: ChildProcess) => void;
  onStart?: (child: ChildProcess) => void;
}

export function runPgwal(args: readonly string[], options: CliOptions = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [options.script ?? PGWAL_BIN, ...args], {
    cwd: options.cwd ?? PROJECT_ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PGCONNECT_TIMEOUT: "10", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  options.onStart?.(child);
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  child.stderr.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
    options.onStderr?.(stderr, child);
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 40_000);
  return new Promise((resolve) => {
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/** The JSON log lines of a run (plain `pgwal: error:` lines are skipped). */
export function jsonLogLines(stderr: string): Record<string, unknown>[] {
  return stderr
    .split("\n")
    .filter((line) => line.startsWith("{"))
    .map((line) => JSON.parse(line) as Record<string, unknown>);
}
