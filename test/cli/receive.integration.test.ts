/**
 * The CLI against a real server, run as users run it: `node bin/pgwal` through a symlink named
 * pg_receivewal, stdin closed (except where a terminal is the point). Needs the compiled dist/.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readdir, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { formatLsn, parseLsn } from "../../src/lsn.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { type CliOptions, type CliRun, jsonLogLines, runPgwal } from "./cli-harness.js";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const bin = join(root, "bin", "pgwal");
const SEGMENT = 1024 * 1024;

let cluster: PgCluster;
let workDir: string;
let dropIn: string;

before(async () => {
  cluster = await startSharedCluster({
    name: "cli",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "64MB" },
  });
  workDir = await mkdtemp(join(tmpdir(), "pgwal-cli-it-"));
  dropIn = join(workDir, "pg_receivewal");
  await symlink(bin, dropIn);
});

after(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** Runs the CLI as pg_receivewal with a minimal environment: no PG* leaks in from the test runner. */
function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return runPgwal(args, {
    timeoutMs: 60_000,
    ...options,
    script: dropIn,
    cwd: workDir,
    env: { HOME: workDir, ...options.env },
  });
}

function connectionArgs(user: string = TEST_USERS.trust.name): string[] {
  return ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", user];
}

async function slotExists(name: string): Promise<boolean> {
  return (await cluster.sql(`SELECT count(*) FROM pg_replication_slots WHERE slot_name = '${name}'`)) === "1";
}

test("--create-slot creates a physical slot and exits 0 without -D; --drop-slot drops it", async () => {
  const created = await runCli(["--create-slot", "-S", "cli_slot", "-v", ...connectionArgs()]);
  assert.equal(created.status, 0, created.stderr);
  assert.equal(await slotExists("cli_slot"), true);
  assert.equal(
    await cluster.sql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'cli_slot'"),
    "physical",
  );
  assert.ok(jsonLogLines(created.stderr).some((l) => l.msg === 'creating replication slot "cli_slot"'));

  const again = await runCli(["--create-slot", "-S", "cli_slot", ...connectionArgs()]);
  assert.equal(again.status, 1);
  assert.match(again.stderr, /^pg_receivewal: error: .*replication slot "cli_slot" already exists/m);

  const tolerated = await runCli(["--create-slot", "--if-not-exists", "-S", "cli_slot", ...connectionArgs()]);
  assert.equal(tolerated.status, 0, tolerated.stderr);

  const dropped = await runCli(["--drop-slot", "--slot=cli_slot", ...connectionArgs()]);
  assert.equal(dropped.status, 0, dropped.stderr);
  assert.equal(await slotExists("cli_slot"), false);

  const missing = await runCli(["--drop-slot", "--slot=cli_slot", ...connectionArgs()]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /^pg_receivewal: error: .*replication slot "cli_slot" does not exist/m);
});

test("streams to --endpos and exits 0; -v logs each finished segment with lsn, timeline, segment", async () => {
  const directory = await mkdtemp(join(workDir, "endpos-"));
  const start = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
  const endpos = start + BigInt(2 * SEGMENT);
  let generating: Promise<string> | undefined;
  const result = await runCli(["-D", directory, "-E", formatLsn(endpos), "-v", "-n", ...connectionArgs()], {
    onStderr: (stderr) => {
      // Write WAL only once streaming has begun, so it has to travel through the receiver.
      if (generating === undefined && stderr.includes("starting log streaming"))
        generating = cluster.generateWal(4);
    },
  });
  await generating;
  assert.equal(result.status, 0, result.stderr);
  const lines = jsonLogLines(result.stderr);
  const finished = lines.filter((l) => String(l.msg).startsWith("finished segment at "));
  assert.ok(finished.length >= 1, result.stderr);
  for (const line of finished) {
    assert.equal(line.level, "info");
    assert.equal(line.name, "pg_receivewal");
    assert.match(String(line.lsn), /^[0-9A-F]+\/[0-9A-F]+$/);
    assert.equal(line.timeline, 1);
    assert.match(String(line.segment), /^[0-9A-F]{24}$/);
  }
  const files = await readdir(directory);
  for (const line of finished) assert.ok(files.includes(String(line.segment)), `${line.segment} in ${files}`);
  assert.ok(lines.some((l) => String(l.msg).startsWith("stopped log streaming at ")));
});

/**
 * Waits until the receiver has opened a segment, then returns the file names. A little WAL is
 * written meanwhile: right after a segment switch the server has nothing to send until some
 * background record comes along (up to 15 s).
 */
async function waitForPartial(directory: string): Promise<string[]> {
  const deadline = Date.now() + 30_000;
  for (let round = 0; ; round++) {
    const names = await readdir(directory);
    if (names.some((f) => /^[0-9A-F]{24}\.partial$/.test(f)) || Date.now() > deadline) return names;
    if (round % 10 === 0) await cluster.sql("SELECT pg_logical_emit_message(false, 'pgwal-cli-test', 'x')");
    await sleep(50);
  }
}

/** Streams into a new directory, sends `signal` once WAL arrived; returns the run and the files left. */
async function streamThenSignal(signal: NodeJS.Signals, extraArgs: string[]) {
  const directory = await mkdtemp(join(workDir, `${signal}-`));
  let child: ReturnType<typeof spawn> | undefined;
  const running = runCli(["-D", directory, ...extraArgs, ...connectionArgs()], {
    onStart: (c) => (child = c),
  });
  const before = await waitForPartial(directory);
  assert.ok(
    before.some((f) => f.endsWith(".partial")),
    `streaming never started: ${before}`,
  );
  child!.kill(signal);
  const result = await running;
  return { result, files: await readdir(directory) };
}

test("SIGTERM and SIGINT stop cleanly: exit 0, the open segment stays .partial", async () => {
  const term = await streamThenSignal("SIGTERM", ["--log-level=info"]);
  assert.equal(term.result.signal, null);
  assert.equal(term.result.status, 0, term.result.stderr);
  assert.ok(jsonLogLines(term.result.stderr).some((l) => l.msg === "received interrupt signal, exiting"));
  assert.ok(
    term.files.some((f) => /^[0-9A-F]{24}\.partial$/.test(f)),
    `${term.files}`,
  );

  // Without -v or --log-level pg_receivewal prints nothing at all on a clean stop.
  const int = await streamThenSignal("SIGINT", []);
  assert.equal(int.result.status, 0, int.result.stderr);
  assert.equal(int.result.stderr, "");
  assert.ok(
    int.files.some((f) => /^[0-9A-F]{24}\.partial$/.test(f)),
    `${int.files}`,
  );
});

test("-w never prompts: a password user without one fails with libpq's message; PGPASSWORD works", async () => {
  const user = TEST_USERS.scram;
  const refused = await runCli(["--create-slot", "-S", "pw_slot", "-w", ...connectionArgs(user.name)]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /^pg_receivewal: error: .*fe_sendauth: no password supplied/m);

  const accepted = await runCli(["--create-slot", "-S", "pw_slot", "-w", ...connectionArgs(user.name)], {
    env: { PGPASSWORD: user.password },
  });
  assert.equal(accepted.status, 0, accepted.stderr);
  assert.equal(await slotExists("pw_slot"), true);

  const wrong = await runCli(["--drop-slot", "-S", "pw_slot", ...connectionArgs(user.name)], {
    env: { PGPASSWORD: "not-the-password" },
  });
  assert.equal(wrong.status, 1);
  assert.match(wrong.stderr, /password authentication failed/);
  assert.doesNotMatch(wrong.stderr, /not-the-password/);
  await cluster.sql("SELECT pg_drop_replication_slot('pw_slot')");
});

test("-d connection string: its settings apply, -h/-p/-U win over it", async () => {
  const conninfo = `host=127.0.0.1 port=${cluster.port} user=nobody_here dbname=postgres sslmode=disable`;
  const result = await runCli([
    "--create-slot",
    "-S",
    "conninfo_slot",
    "-d",
    conninfo,
    "-U",
    TEST_USERS.trust.name,
  ]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(await slotExists("conninfo_slot"), true);
  await cluster.sql("SELECT pg_drop_replication_slot('conninfo_slot')");
});

test("without -w, a password is asked for on the terminal (no echo) and used", {
  skip: !existsSync("/usr/bin/script"),
}, async () => {
  const user = TEST_USERS.scram;
  // script(1) gives the CLI a pseudo-terminal as its controlling terminal; we type into it.
  const command = [
    process.execPath,
    dropIn,
    "--create-slot",
    "-S",
    "prompt_slot",
    ...connectionArgs(user.name),
  ]
    .map((word) => `'${word}'`)
    .join(" ");
  const child = spawn("/usr/bin/script", ["-qec", command, "/dev/null"], {
    cwd: workDir,
    env: { PATH: process.env.PATH, HOME: workDir, TERM: "dumb" },
    stdio: ["pipe", "pipe", "pipe"],
  });
  let output = "";
  let typed = false;
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString("utf8");
    if (!typed && output.includes("Password: ")) {
      typed = true;
      child.stdin.write(`${user.password}\r`);
    }
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const status = await new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  clearTimeout(timer);
  assert.ok(typed, `no prompt seen: ${output}`);
  assert.equal(status, 0, output);
  assert.ok(!output.includes(user.password), `password echoed: ${output}`);
  assert.equal(await slotExists("prompt_slot"), true);
  await cluster.sql("SELECT pg_drop_replication_slot('prompt_slot')");
});
