/**
 * Running PostgreSQL's command-line programs for the test harness.
 *
 * PostgreSQL refuses to run as root, and tests and CI run as root, so server-side programs are wrapped
 * in `runuser -u postgres --` when this process is root.
 */
import { spawn } from "node:child_process";
import { chown } from "node:fs/promises";

/** OS user that owns data directories and runs server programs when the tests run as root. */
export const SERVER_OS_USER = "postgres";

export interface RunOptions {
  /** Text written to the program's standard input (closed right after). */
  input?: string;
  /** Extra environment variables; PG* variables of this process are never passed on. */
  env?: Record<string, string>;
  cwd?: string;
  /** Kills the program (SIGKILL) after this many milliseconds. */
  timeoutMs?: number;
  /** Run as the server OS user when this process is root (initdb, pg_ctl, pg_basebackup). */
  asServerUser?: boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export function isRoot(): boolean {
  return typeof process.getuid === "function" && process.getuid() === 0;
}

/** The environment for harness commands: PG* settings of the caller must not redirect them elsewhere. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith("PG")) env[key] = value;
  }
  env.LC_ALL = "C";
  return { ...env, ...extra };
}

export class CommandError extends Error {
  constructor(
    message: string,
    readonly exitCode: number | null,
    readonly stdout: string,
    readonly stderr: string,
  ) {
    super(message);
    this.name = "CommandError";
  }
}

/** Runs a program to completion; rejects with CommandError (carrying its output) on a non-zero exit. */
export function runCommand(
  program: string,
  args: readonly string[],
  options: RunOptions = {},
): Promise<RunResult> {
  const wrapped = options.asServerUser && isRoot();
  const file = wrapped ? "runuser" : program;
  const argv = wrapped ? ["-u", SERVER_OS_USER, "--", program, ...args] : [...args];
  const shown = [program, ...args].join(" ");
  return new Promise((resolve, reject) => {
    const child = spawn(file, argv, {
      cwd: options.cwd,
      env: cleanEnv(options.env),
      stdio: ["pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let timedOut = false;
    const timer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            timedOut = true;
            child.kill("SIGKILL");
          }, options.timeoutMs);
    child.stdout.on("data", (chunk: Buffer) => out.push(chunk));
    child.stderr.on("data", (chunk: Buffer) => err.push(chunk));
    child.stdin.on("error", () => {
      // The program may exit without reading its input; its exit status tells what happened.
    });
    child.stdin.end(options.input ?? "");
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(new CommandError(`${shown}: ${error.message}`, null, "", ""));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      const stdout = Buffer.concat(out).toString("utf8");
      const stderr = Buffer.concat(err).toString("utf8");
      if (code === 0) {
        resolve({ stdout, stderr });
        return;
      }
      const why = timedOut
        ? `timed out after ${options.timeoutMs} ms`
        : signal
          ? `killed by ${signal}`
          : `exit code ${code}`;
      const detail = (stderr.trim() || stdout.trim()).slice(-4000);
      reject(
        new CommandError(`${shown} failed (${why})${detail ? `:\n${detail}` : ""}`, code, stdout, stderr),
      );
    });
  });
}

/** Gives a path to the server OS user when running as root (no-op otherwise). */
export async function chownToServerUser(path: string): Promise<void> {
  if (!isRoot()) return;
  const { uid, gid } = await lookupServerUser();
  await chown(path, uid, gid);
}

let serverUser: Promise<{ uid: number; gid: number }> | undefined;

/** Looks up the server OS user's ids (via `id`), once per process; a clear error when it is missing. */
export function lookupServerUser(): Promise<{ uid: number; gid: number }> {
  serverUser ??= (async () => {
    try {
      const uid = Number((await runCommand("id", ["-u", SERVER_OS_USER])).stdout.trim());
      const gid = Number((await runCommand("id", ["-g", SERVER_OS_USER])).stdout.trim());
      return { uid, gid };
    } catch (error) {
      serverUser = undefined;
      throw new Error(
        `running as root, but the OS user "${SERVER_OS_USER}" that must run PostgreSQL does not exist ` +
          `(create it, e.g. useradd --system ${SERVER_OS_USER})`,
        { cause: error },
      );
    }
  })();
  return serverUser;
}
