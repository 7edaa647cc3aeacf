/**
 * Every example in README.md, run against a real throwaway cluster.
 *
 * The examples are read from README.md itself (```sh lines, the ```ini restore_command, the ```ts
 * library example), so an edited example is the one that is tested. Each known example text has a
 * case below; an example without a case, or a case whose example left the README, fails the first
 * test. Illustrative names are replaced by this table before an example runs (see `substitute`):
 *
 *   /var/lib/pgwal/archive      -> a temp dir ("archive A")
 *   /archive                    -> another temp dir ("archive B")
 *   /mnt/wal-copy               -> a temp dir for the hook's copies
 *   /usr/local/bin              -> a temp bin dir, first in PATH, that holds a `pgwal` symlink to bin/pgwal
 *   127.0.0.1:9187              -> 127.0.0.1:<a free port>
 *   -h db1 / host=db1           -> -h 127.0.0.1 -p <port> / host=127.0.0.1 port=<port>
 *   -U replicator / user=replicator -> a test role with REPLICATION (TEST_USERS.trust)
 *   slot names (pgwal_slot)     -> kept
 *   AWS S3, https://s3.example.net -> the test's Ceph RGW (test/support/rgw.ts): AWS_ENDPOINT_URL_S3 is
 *                                  added after AWS_REGION=…, the profile's keys are written to
 *                                  $HOME/.aws/credentials, EXAMPLEKEY/EXAMPLESECRET become RGW keys
 *
 * Shell lines run through /bin/sh (`exec LINE`, so a signal reaches pgwal itself) with HOME set to a
 * temp dir. Examples that stream until stopped are started, observed, and stopped with SIGTERM.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import {
  cp,
  lstat,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  readlink,
  rm,
  symlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { formatLsn, parseLsn } from "../../src/lsn.js";
import { openObjectStore } from "../../src/store/open-store.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { findFreePort } from "../support/free-port.js";
import { startSharedRgw } from "../support/rgw.js";
import { waitFor as waitUntil } from "../support/wait-for.js";
import { PGWAL_BIN, PROJECT_ROOT } from "./cli-harness.js";

const README = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");
const PACKAGE_SCRIPTS = (
  JSON.parse(readFileSync(join(PROJECT_ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> }
).scripts;
const SEGMENT = 1024 * 1024;
const USER = TEST_USERS.trust.name;

// ---------------------------------------------------------------------------------------------------
// Extracting the examples

type ExampleKind = "sh" | "ini" | "ts";
interface Example {
  kind: ExampleKind;
  /** The example as written; continuation lines of a shell command joined with one space. */
  text: string;
}

/** Fenced blocks of README.md with their language tag. */
function fencedBlocks(markdown: string): { lang: string; body: string }[] {
  return [...markdown.matchAll(/^```(\w*)\n([\s\S]*?)^```/gm)].map((m) => ({ lang: m[1]!, body: m[2]! }));
}

/** The examples: one per shell command line, one per ini setting, one per TypeScript block. */
function extractExamples(markdown: string): Example[] {
  const examples: Example[] = [];
  for (const block of fencedBlocks(markdown)) {
    if (block.lang === "ts") {
      examples.push({ kind: "ts", text: block.body });
    } else if (block.lang === "sh" || block.lang === "ini") {
      const joined = block.body.replace(/\\\n\s*/g, "");
      for (const line of joined.split("\n")) {
        if (line.trim() !== "") examples.push({ kind: block.lang, text: line.trim() });
      }
    }
  }
  return examples;
}

// ---------------------------------------------------------------------------------------------------
// The cases. Every README example must have exactly one; the key is the example's exact text.

/** Lines of the "Running under systemd" block: systemd-unit.integration.test.ts runs and checks them. */
const SYSTEMD_TEST = "test/cli/systemd-unit.integration.test.ts";

const CASES: ReadonlyMap<string, string> = new Map([
  // Set-up
  [
    "npm ci && npm run demo     # the main job: streams WAL from a throwaway PostgreSQL into ./demo-archive",
    "demo",
  ],
  [
    "npm test                   # the whole test suite (unit tests and real PostgreSQL clusters)",
    "npm-script",
  ],
  // Usage
  ["pgwal receive -D /var/lib/pgwal/archive -S pgwal_slot -h db1 -U replicator", "receive-slot"],
  [
    "pgwal receive -D /archive --slot pgwal_slot --create-slot -h db1 -U replicator   # create the slot, exit",
    "create-slot",
  ],
  [
    'pgwal receive -D /archive -Z lz4 --synchronous -d "host=db1 user=replicator application_name=pgwal"',
    "lz4-synchronous",
  ],
  [
    'ln -s "$(command -v pgwal)" /usr/local/bin/pg_receivewal   # drop-in: behaves and speaks like pg_receivewal',
    "drop-in",
  ],
  ["restore_command = 'pgwal restore --directory=/var/lib/pgwal/archive %f %p'", "restore-command"],
  ["pgwal verify /var/lib/pgwal/archive", "verify"],
  ["pgwal verify /var/lib/pgwal/archive --from 0/3000000 --to 0/5000000 --json", "verify-range"],
  ["pgwal verify /var/lib/pgwal/archive --records", "verify-records"],
  ["pgwal verify /var/lib/pgwal/archive --target-time '2026-11-29 14:05:00+01'", "verify-target-time"],
  ["pgwal verify /var/lib/pgwal/archive --target-name before-upgrade --json", "verify-target-name"],
  ["pgwal status /var/lib/pgwal/archive --json", "status-json"],
  ["pgwal status /var/lib/pgwal/archive -h db1 -U replicator", "status-server"],
  ["pgwal cleanup /var/lib/pgwal/archive --keep 7d --dry-run", "cleanup-keep"],
  [
    "pgwal cleanup /var/lib/pgwal/archive --before 000000010000000000000003.00000028.backup",
    "cleanup-before",
  ],
  [
    "pgwal receive -D /var/lib/pgwal/archive -S pgwal_slot -h db1 -U replicator --on-segment 'cp %p /mnt/wal-copy/%f' --hook-holds-slot --metrics-listen 127.0.0.1:9187",
    "hook-metrics",
  ],
  [
    "AWS_PROFILE=wal-archiver AWS_REGION=eu-west-1 pgwal receive -D /var/lib/pgwal/archive -S pgwal_slot -h db1 -U replicator --target s3://example-wal-archive/main --upload-holds-slot",
    "s3-aws",
  ],
  [
    "AWS_ACCESS_KEY_ID=EXAMPLEKEY AWS_SECRET_ACCESS_KEY=EXAMPLESECRET AWS_ENDPOINT_URL_S3=https://s3.example.net pgwal receive -D /archive -h db1 -U replicator -Z lz4 --target s3://wal/main --upload-concurrency 8",
    "s3-compatible",
  ],
  // Running under systemd
  ["useradd --system --home-dir /var/lib/pgwal --shell /usr/sbin/nologin pgwal", SYSTEMD_TEST],
  ["install -d -o pgwal -g pgwal -m 0700 /var/lib/pgwal/main", SYSTEMD_TEST],
  ["install -D -m 0644 contrib/systemd/pgwal@.service /etc/systemd/system/pgwal@.service", SYSTEMD_TEST],
  ["install -D -m 0640 contrib/systemd/pgwal.env.example /etc/pgwal/main.env   # then edit it", SYSTEMD_TEST],
  [
    "(set -a; . /etc/pgwal/main.env; exec runuser -u pgwal -- pgwal receive --create-slot)   # once: the slot named in PGWAL_SLOT",
    SYSTEMD_TEST,
  ],
  ["systemctl daemon-reload && systemctl enable --now pgwal@main", SYSTEMD_TEST],
  [
    "systemctl status pgwal@main     # STATUS line: timeline, received/flushed, server position, lag",
    SYSTEMD_TEST,
  ],
  // Development
  ["npm run build      # tsc → dist/", "npm-script"],
  ["npm run lint       # Biome + tsc --noEmit", "npm-script"],
  [
    "npm test           # everything (needs PostgreSQL server binaries; run as root, servers run as `postgres`)",
    "npm-script",
  ],
  ["npm run test:unit  # only the fast tests, no server", "npm-script"],
  ["npm run test:matrix  # the whole suite on PostgreSQL 13, 14, 15, 16, 17 and 18", "npm-script"],
  ["npm run test:node-lines  # the whole suite on Node.js 22, 24 and 26", "npm-script"],
  ["npm run test:soak  # the kill -9 storm with 120 kills (CI runs 25)", "npm-script"],
  [
    "npm run test:powerloss  # power cuts at random moments on a FUSE file system that loses what was not fsynced",
    "npm-script",
  ],
  ["npm run bench      # side-by-side benchmark against pg_receivewal (not part of the tests)", "npm-script"],
]);

/** The library example is matched by its kind: there is one ```ts block, run by the "library" test. */
const EXAMPLES = extractExamples(README);
const LIBRARY_EXAMPLE = EXAMPLES.find((e) => e.kind === "ts")?.text;

/** The README example with this case name (fails if it left the README). */
function example(caseName: string): string {
  const texts = [...CASES].filter(([, name]) => name === caseName).map(([text]) => text);
  assert.equal(texts.length, 1, `one README example for case ${caseName}`);
  assert.ok(
    EXAMPLES.some((e) => e.text === texts[0]),
    `README still has: ${texts[0]}`,
  );
  return texts[0]!;
}

// ---------------------------------------------------------------------------------------------------
// Running them

let cluster: PgCluster;
let workDir: string;
let dirs: { archive: string; slashArchive: string; walCopy: string; bin: string; home: string };
let metricsPort: number;
const rgw = await startSharedRgw();
const children = new Set<ChildProcess>();

before(async () => {
  cluster = await startSharedCluster({
    name: "readme",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "128MB" },
  });
  workDir = await mkdtemp(join(tmpdir(), "pgwal-readme-"));
  dirs = {
    archive: join(workDir, "archive-A"),
    slashArchive: join(workDir, "archive-B"),
    walCopy: join(workDir, "wal-copy"),
    bin: join(workDir, "bin"),
    home: join(workDir, "home"),
  };
  for (const dir of Object.values(dirs)) await mkdir(dir, { recursive: true, mode: 0o700 });
  await symlink(PGWAL_BIN, join(dirs.bin, "pgwal"));
  metricsPort = await findFreePort();
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

/** The substitution table of the file comment, applied to one example. */
function substitute(text: string): string {
  const out = text
    .replaceAll("/var/lib/pgwal/archive", dirs.archive)
    .replace(/(?<=[\s="'])\/archive(?=[\s"']|$)/g, dirs.slashArchive)
    .replaceAll("/mnt/wal-copy", dirs.walCopy)
    .replaceAll("/usr/local/bin", dirs.bin)
    .replaceAll("127.0.0.1:9187", `127.0.0.1:${metricsPort}`)
    .replace(/-h db1(?=\s|$)/g, `-h 127.0.0.1 -p ${cluster.port}`)
    .replace(/host=db1(?=\s|"|$)/g, `host=127.0.0.1 port=${cluster.port}`)
    .replace(/-U replicator(?=\s|$)/g, `-U ${USER}`)
    .replace(/user=replicator(?=\s|"|$)/g, `user=${USER}`);
  assert.doesNotMatch(out, /db1|replicator|\/var\/lib|\/mnt\//, `every illustrative name replaced: ${out}`);
  return out;
}

interface Finished {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}
interface Started {
  child: ChildProcess;
  output: () => { stdout: string; stderr: string };
  finished: Promise<Finished>;
}

/** Starts a shell command as README users would type it (with pgwal on PATH). */
function startShell(command: string, options: { cwd?: string; timeoutMs?: number } = {}): Started {
  // `VAR=value … exec program`: leading assignments stay the environment of the program exec runs.
  const execLine = command.replace(/^((?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*)/, "$1exec ");
  const child = spawn("/bin/sh", ["-c", execLine], {
    cwd: options.cwd ?? workDir,
    env: { PATH: `${dirs.bin}:${process.env.PATH}`, HOME: dirs.home, PGCONNECT_TIMEOUT: "10" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
  });
  child.stderr!.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
  });
  const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
  const finished = new Promise<Finished>((resolve) => {
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ status, signal, stdout, stderr });
    });
  });
  return { child, output: () => ({ stdout, stderr }), finished };
}

function runShell(command: string, options: { cwd?: string } = {}): Promise<Finished> {
  return startShell(command, options).finished;
}

/** Sends SIGTERM (systemd's and a user's stop) and expects a clean exit 0. */
async function stopCleanly(run: Started): Promise<Finished> {
  run.child.kill("SIGTERM");
  const result = await run.finished;
  assert.equal(result.signal, null, result.stderr);
  assert.equal(result.status, 0, result.stderr);
  return result;
}

/** Polls like the shared waitFor, failing at once when the example's process has exited. */
async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  timeoutMs = 20_000,
  running?: Started,
): Promise<T> {
  try {
    return await waitUntil(
      what,
      () => {
        if (running !== undefined && running.child.exitCode !== null)
          throw new Error(`the example exited while waiting for ${what}: ${running.output().stderr}`);
        return probe();
      },
      timeoutMs,
    );
  } catch (error) {
    if (running === undefined || running.child.exitCode !== null) throw error;
    throw new Error(`${(error as Error).message}\n${running.output().stderr}`);
  }
}

const COMPLETE_SEGMENT = /^[0-9A-F]{24}$/;

/** Names of complete segment files in `dir` (with `suffix`, e.g. ".lz4"), sorted. */
async function completeSegments(dir: string, suffix = ""): Promise<string[]> {
  return (await readdir(dir))
    .filter((f) => f.endsWith(suffix) && COMPLETE_SEGMENT.test(f.slice(0, f.length - suffix.length)))
    .sort();
}

/** Writes a little WAL and switches segment, `count` times: whole segments for the receivers. */
async function switchSegments(count: number): Promise<string> {
  return cluster.sql(
    [
      "CREATE TABLE IF NOT EXISTS readme_tick (i int);",
      `DO $$ BEGIN FOR i IN 1..${count} LOOP INSERT INTO readme_tick VALUES (i); PERFORM pg_switch_wal(); END LOOP; END $$;`,
      "SELECT pg_current_wal_lsn();",
    ].join("\n"),
  );
}

/** The segment file name holding `lsn` on timeline 1 (1 MB segments). */
function segmentNameAt(lsn: bigint): string {
  const segNo = lsn / BigInt(SEGMENT);
  const perId = BigInt(0x100000000 / SEGMENT);
  const hex = (n: bigint) => n.toString(16).toUpperCase().padStart(8, "0");
  return `00000001${hex(segNo / perId)}${hex(segNo % perId)}`;
}

// ---------------------------------------------------------------------------------------------------
// The tests, in the order the examples depend on each other

test("every README example has a case here, and every case's example is still in the README", () => {
  const texts = EXAMPLES.filter((e) => e.kind !== "ts").map((e) => e.text);
  const uncovered = texts.filter((t) => !CASES.has(t));
  assert.deepEqual(uncovered, [], "README examples without a case in readme-examples.integration.test.ts");
  const stale = [...CASES.keys()].filter((t) => !texts.includes(t));
  assert.deepEqual(stale, [], "cases whose example is no longer in README.md");
  assert.equal(texts.length, CASES.size, "each example exactly once");
  assert.equal(EXAMPLES.filter((e) => e.kind === "ts").length, 1, "one library example");
  // Every `pgwal …` command in an example is one of the cases (a new one cannot slip through).
  const pgwalLines = texts.filter((t) => /(^|[\s'"])pgwal (receive|restore|verify|status|cleanup)\b/.test(t));
  assert.ok(pgwalLines.length >= 10, `pgwal examples found: ${pgwalLines.length}`);
  assert.ok(pgwalLines.every((t) => CASES.has(t)));
});

test("npm run … lines name scripts of package.json", () => {
  for (const [text, name] of CASES) {
    if (name !== "npm-script" && name !== "demo") continue;
    for (const m of text.replace(/#.*$/, "").matchAll(/npm (?:run ([\w:-]+)|(test)\b)/g)) {
      const script = m[1] ?? m[2]!;
      assert.ok(PACKAGE_SCRIPTS[script] !== undefined, `package.json has script "${script}" (${text})`);
    }
  }
  assert.match(PACKAGE_SCRIPTS.demo!, /node dist\/demo\/demo\.js/);
});

test("--create-slot: creates the physical slot pgwal_slot and exits 0", async () => {
  const result = await runShell(substitute(example("create-slot")));
  assert.equal(result.status, 0, result.stderr);
  assert.equal(
    await cluster.sql("SELECT slot_type FROM pg_replication_slots WHERE slot_name = 'pgwal_slot'"),
    "physical",
  );
  assert.deepEqual(await readdir(dirs.slashArchive), [], "creating a slot writes no WAL files");
});

test("receive -S pgwal_slot: streams through the slot, segments arrive byte-identical; SIGTERM exits 0", {
  timeout: 60_000,
}, async () => {
  const startLsn = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
  // The verify example checks 0/3000000..0/5000000 of this archive: it must start before that range.
  assert.ok(startLsn < 0x3000000n, `a fresh cluster is still before 0/3000000 (at ${startLsn.toString(16)})`);
  const run = startShell(substitute(example("receive-slot")));
  try {
    await waitFor(
      "the slot to be in use",
      async () =>
        (await cluster.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'pgwal_slot'")) === "t"
          ? true
          : undefined,
      20_000,
      run,
    );
    // Past 0/5000000, so the verify example's range is all there.
    let serverLsn = parseLsn(await switchSegments(8));
    while (serverLsn < 0x5100000n) serverLsn = parseLsn(await switchSegments(16));
    // The DO block's commit record starts a new segment: the one before it is the last complete one.
    const wanted = segmentNameAt((serverLsn / BigInt(SEGMENT)) * BigInt(SEGMENT) - 1n);
    await waitFor(
      `segment ${wanted} in the archive`,
      async () => ((await completeSegments(dirs.archive)).includes(wanted) ? true : undefined),
      30_000,
      run,
    );
    const segments = await completeSegments(dirs.archive);
    assert.ok(segments.length >= 40, `complete segments: ${segments.length}`);
    // A complete segment equals the server's own file (the slot keeps it in pg_wal).
    const sample = segments.at(-2)!;
    if (existsSync(cluster.walPath(sample)))
      assert.deepEqual(await readFile(join(dirs.archive, sample)), await readFile(cluster.walPath(sample)));
    // The slot follows what pgwal has flushed (at the default 10 s status interval), never past the
    // end of what the archive holds.
    const restart = await waitFor("the slot to advance", async () => {
      const text = await cluster.sql(
        "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgwal_slot'",
      );
      return text !== "" && parseLsn(text) > startLsn ? parseLsn(text) : undefined;
    });
    const newestFile = (await readdir(dirs.archive))
      .filter((f) => /^[0-9A-F]{24}/.test(f))
      .sort()
      .at(-1)!;
    const archiveEnd = (BigInt(`0x${newestFile.slice(16, 24)}`) + 1n) * BigInt(SEGMENT);
    assert.ok(restart <= archiveEnd, `slot ${formatLsn(restart)} <= archive end ${formatLsn(archiveEnd)}`);
  } finally {
    await stopCleanly(run);
  }
});

test("receive -Z lz4 --synchronous -d '…application_name=pgwal': .lz4 segments, a synchronous standby", {
  timeout: 60_000,
}, async () => {
  const run = startShell(substitute(example("lz4-synchronous")));
  try {
    await waitFor(
      "pgwal in pg_stat_replication",
      async () =>
        (await cluster.sql("SELECT state FROM pg_stat_replication WHERE application_name = 'pgwal'")) ===
        "streaming"
          ? true
          : undefined,
      20_000,
      run,
    );
    // The server makes pgwal its synchronous standby: from now on a commit waits for pgwal's flush.
    await cluster.sql("ALTER SYSTEM SET synchronous_standby_names = 'pgwal'; SELECT pg_reload_conf();");
    try {
      await waitFor("sync_state = sync", async () =>
        (await cluster.sql("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pgwal'")) ===
        "sync"
          ? true
          : undefined,
      );
      const committed = parseLsn(
        await cluster.sql(
          "CREATE TABLE IF NOT EXISTS readme_sync (i int); INSERT INTO readme_sync VALUES (1); SELECT pg_current_wal_lsn();",
        ),
      );
      // The commit returned, so the server has pgwal's flush report for it.
      const flushed = parseLsn(
        await cluster.sql("SELECT flush_lsn FROM pg_stat_replication WHERE application_name = 'pgwal'"),
      );
      assert.ok(flushed >= committed, `flush ${flushed.toString(16)} >= commit ${committed.toString(16)}`);
      await switchSegments(3);
    } finally {
      await cluster.sql("ALTER SYSTEM RESET synchronous_standby_names; SELECT pg_reload_conf();");
    }
    const lz4 = await waitFor(
      "two complete .lz4 segments",
      async () => {
        const files = await completeSegments(dirs.slashArchive, ".lz4");
        return files.length >= 2 ? files : undefined;
      },
      20_000,
      run,
    );
    const names = await readdir(dirs.slashArchive);
    assert.ok(
      names.every((n) => n.endsWith(".lz4") || n.endsWith(".lz4.partial")),
      `only lz4 files: ${names.join(" ")}`,
    );
    // An lz4 frame starts with its magic number 0x184D2204 (little-endian).
    const head = (await readFile(join(dirs.slashArchive, lz4[0]!))).subarray(0, 4);
    assert.deepEqual([...head], [0x04, 0x22, 0x4d, 0x18]);
  } finally {
    await stopCleanly(run);
  }
  const verified = await runShell(`pgwal verify ${dirs.slashArchive}`);
  assert.equal(verified.status, 0, verified.stdout + verified.stderr);
});

test("receive … --on-segment 'cp %p /mnt/wal-copy/%f' --hook-holds-slot --metrics-listen: copies, metrics", {
  timeout: 60_000,
}, async () => {
  const run = startShell(substitute(example("hook-metrics")));
  try {
    const base = `http://127.0.0.1:${metricsPort}`;
    const metrics = await waitFor(
      "the metrics endpoint",
      async () => {
        const response = await fetch(`${base}/metrics`).catch(() => undefined);
        return response?.status === 200 ? response.text() : undefined;
      },
      20_000,
      run,
    );
    assert.match(metrics, /^pgwal_flushed_lsn_bytes \d+/m);
    assert.match(metrics, /^pgwal_hook_pending_files \d+/m);
    await waitFor("/healthz 200 (streaming)", async () => {
      const response = await fetch(`${base}/healthz`);
      return response.status === 200 ? true : undefined;
    });
    await switchSegments(3);
    // This run completes three segments; the hook may also be catching up on older ones of the
    // shared archive, so the copies alone do not prove this run's work: wait for the counter.
    await waitFor(
      "pgwal_segments_completed_total >= 3",
      async () => {
        const text = await (await fetch(`${base}/metrics`)).text();
        const completed = Number(/^pgwal_segments_completed_total (\d+)/m.exec(text)?.[1]);
        return completed >= 3 ? completed : undefined;
      },
      20_000,
      run,
    );
    // Every complete segment of the archive gets its copy (the hook runs in order, off the stream).
    const archived = await completeSegments(dirs.archive);
    const copied = await waitFor(
      "the hook's copies of every complete segment",
      async () => {
        const files = await completeSegments(dirs.walCopy);
        return archived.every((name) => files.includes(name)) ? files : undefined;
      },
      20_000,
      run,
    );
    assert.ok(copied.length >= 3, `copies: ${copied.join(" ")}`);
    for (const name of copied)
      assert.deepEqual(
        await readFile(join(dirs.walCopy, name)),
        await readFile(join(dirs.archive, name)),
        name,
      );
    // Hook progress went to the default state file under $HOME, not into the archive.
    assert.ok(
      existsSync(join(dirs.home, ".local", "state", "pgwal")),
      "hook state under ~/.local/state/pgwal",
    );
  } finally {
    await stopCleanly(run);
  }
});

/**
 * Runs an --target example until every complete segment of its archive is in the bucket, byte for
 * byte; returns the bucket's object names.
 */
async function runUploadExample(
  command: string,
  url: string,
  archive: string,
  suffix: string,
): Promise<{ name: string; size: number }[]> {
  const store = await openObjectStore(url, { credentials: rgw.credentials }, rgw.awsEnv());
  const run = startShell(command);
  try {
    // The store is checked before streaming starts: a walsender means both went well.
    await waitFor(
      "pgwal streaming (in pg_stat_replication)",
      async () =>
        Number(await cluster.sql("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'")) > 0
          ? true
          : undefined,
      20_000,
      run,
    );
    await switchSegments(3);
    const archived = await waitFor("three complete segments", async () => {
      const names = await completeSegments(archive, suffix);
      return names.length >= 3 ? names : undefined;
    });
    const names = await waitFor(
      "every complete segment of the archive in the bucket",
      async () => {
        const stored = await store.list();
        return archived.every((n) => stored.some((o) => o.name === n)) ? stored : undefined;
      },
      60_000,
      run,
    );
    for (const name of archived.slice(-3)) {
      const chunks: Buffer[] = [];
      for await (const chunk of await store.get(name)) chunks.push(chunk as Buffer);
      assert.deepEqual(Buffer.concat(chunks), await readFile(join(archive, name)), name);
    }
    return names;
  } finally {
    await stopCleanly(run);
    store.destroy();
  }
}

test("receive --target s3://… with AWS_PROFILE: the profile's keys upload the archive; the slot is held", {
  timeout: 120_000,
}, async () => {
  await rgw.createBucketNamed("example-wal-archive");
  await mkdir(join(dirs.home, ".aws"), { recursive: true });
  await writeFile(
    join(dirs.home, ".aws", "credentials"),
    `[wal-archiver]\naws_access_key_id = ${rgw.credentials.accessKeyId}\naws_secret_access_key = ${rgw.credentials.secretAccessKey}\n`,
  );
  const command = substitute(example("s3-aws")).replace(
    "AWS_REGION=eu-west-1",
    `AWS_REGION=eu-west-1 AWS_ENDPOINT_URL_S3=${rgw.endpoint}`,
  );
  await runUploadExample(command, "s3://example-wal-archive/main", dirs.archive, "");
  // Listed after the receiver stopped: uploads confirmed after runUploadExample's own listing may
  // rightly have moved the slot further.
  const store = await openObjectStore(
    "s3://example-wal-archive/main",
    { credentials: rgw.credentials },
    rgw.awsEnv(),
  );
  const objects = await store.list().finally(() => store.destroy());
  const names = objects.map((o) => o.name);
  assert.ok(
    names.every((n) => /^[0-9A-F]{24}(\.partial)?$|^[0-9A-F]{8}\.history$/.test(n)),
    names.join(" "),
  );
  // The slot was held at what the bucket holds.
  const restart = parseLsn(
    await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgwal_slot'"),
  );
  const newest = names
    .filter((n) => /^[0-9A-F]{24}$/.test(n))
    .sort()
    .at(-1)!;
  let bucketEnd = (BigInt(`0x${newest.slice(16, 24)}`) + 1n) * BigInt(SEGMENT);
  // An uncompressed .partial right after it holds that segment's first `size` bytes.
  const partial = objects.find((o) => o.name.endsWith(".partial"));
  if (partial !== undefined && BigInt(`0x${partial.name.slice(16, 24)}`) * BigInt(SEGMENT) === bucketEnd)
    bucketEnd += BigInt(partial.size);
  assert.ok(restart <= bucketEnd, `slot ${formatLsn(restart)} <= bucket end ${formatLsn(bucketEnd)}`);
});

test("receive --target s3://wal/main against an S3-compatible endpoint: .lz4 objects as archived", {
  timeout: 120_000,
}, async () => {
  await rgw.createBucketNamed("wal");
  const command = substitute(example("s3-compatible"))
    .replace("EXAMPLEKEY", rgw.credentials.accessKeyId)
    .replace("EXAMPLESECRET", rgw.credentials.secretAccessKey)
    .replace("https://s3.example.net", rgw.endpoint);
  const names = (await runUploadExample(command, "s3://wal/main", dirs.slashArchive, ".lz4")).map(
    (o) => o.name,
  );
  assert.ok(
    names.every((n) => /^[0-9A-F]{24}\.lz4(\.partial)?$|^[0-9A-F]{8}\.history$/.test(n)),
    names.join(" "),
  );
});

test("verify DIR and verify DIR --from 0/3000000 --to 0/5000000 --json: the archive is sound", async () => {
  const plain = await runShell(substitute(example("verify")));
  assert.equal(plain.status, 0, plain.stdout + plain.stderr);
  assert.match(plain.stdout, /OK/);
  const ranged = await runShell(substitute(example("verify-range")));
  assert.equal(ranged.status, 0, ranged.stdout + ranged.stderr);
  const report = JSON.parse(ranged.stdout) as {
    ok: boolean;
    problems: unknown[];
    range: { from: string; to: string; missing: string[] };
  };
  assert.equal(report.ok, true);
  assert.deepEqual(report.problems, []);
  assert.deepEqual(report.range, { ...report.range, from: "0/3000000", to: "0/5000000", missing: [] });
});

test("verify DIR --records: every record of the archive is read and sound", async () => {
  const run = await runShell(substitute(example("verify-records")));
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /OK/);
  assert.match(
    run.stdout,
    /records: [1-9]\d* record\(s\) in [1-9]\d* file\(s\) checked, \d+ bytes, [\d.]+ MB\/s/,
  );
});

test("verify --target-time / --target-name: a time between two commits and a restore point are reachable", {
  timeout: 90_000,
}, async () => {
  const clock = () =>
    cluster.sql("SELECT to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'");
  const run = startShell(substitute(example("receive-slot")));
  let between: string;
  try {
    await waitFor(
      "the slot to be in use",
      async () =>
        (await cluster.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'pgwal_slot'")) === "t"
          ? true
          : undefined,
      20_000,
      run,
    );
    await cluster.sql(
      "CREATE TABLE IF NOT EXISTS readme_target (i int); INSERT INTO readme_target VALUES (1);",
    );
    await cluster.sql("SELECT pg_create_restore_point('before-upgrade')");
    await cluster.sql("SELECT pg_sleep(0.05)");
    between = await clock();
    await cluster.sql("SELECT pg_sleep(0.05); INSERT INTO readme_target VALUES (2);");
    await switchSegments(2);
    await waitFor(
      "the commit after the target time in the archive",
      async () => {
        const answer = await runShell(
          substitute(example("verify-target-time")).replace("2026-11-29 14:05:00+01", between),
        );
        return answer.status === 0 ? answer : undefined;
      },
      30_000,
      run,
    );
  } finally {
    await stopCleanly(run);
  }
  const reachable = await runShell(
    substitute(example("verify-target-time")).replace("2026-11-29 14:05:00+01", between),
  );
  assert.equal(reachable.status, 0, reachable.stdout + reachable.stderr);
  assert.match(reachable.stdout, /^reachable: recovery to time .* is possible/);
  assert.match(reachable.stdout, /segments needed: ([0-9A-F]{24}(\.partial)? ?)+$/m);
  const future = new Date(Date.now() + 3_600_000).toISOString().replace("T", " ").replace("Z", "+00");
  const late = await runShell(
    substitute(example("verify-target-time")).replace("2026-11-29 14:05:00+01", future),
  );
  assert.equal(late.status, 1, late.stdout + late.stderr);
  assert.match(late.stdout, /NOT reachable: target time .* is not before the last commit/);

  const named = await runShell(substitute(example("verify-target-name")));
  assert.equal(named.status, 0, named.stdout + named.stderr);
  const decision = JSON.parse(named.stdout) as {
    reachable: boolean;
    segments: string[];
    stop: { lsn: string };
  };
  assert.equal(decision.reachable, true);
  assert.ok(decision.segments.length > 0);
  const status = JSON.parse((await runShell(substitute(example("status-json")))).stdout) as {
    timeMap: { timeline: number; lastCommit: string; restorePoints: { name: string; lsn: string }[] }[];
  };
  assert.deepEqual(
    status.timeMap[0]?.restorePoints.map((p) => [p.name, p.lsn]),
    [["before-upgrade", decision.stop.lsn]],
  );
});

test("status DIR --json has the documented fields; with -h/-U the server's position and lag", async () => {
  const json = await runShell(substitute(example("status-json")));
  assert.equal(json.status, 0, json.stderr);
  const status = JSON.parse(json.stdout) as Record<string, unknown>;
  // README: timelines, first and last LSN, segment count and bytes on disk, the partial and how full
  // it is, the age of the newest file.
  for (const field of [
    "timelines",
    "firstLsn",
    "lastLsn",
    "segmentCount",
    "totalBytes",
    "partial",
    "ageSeconds",
    "timeMap",
  ])
    assert.ok(field in status, `status --json has ${field}`);
  assert.equal(status.segmentCount, (await completeSegments(dirs.archive)).length);
  assert.ok((status.totalBytes as number) >= (status.segmentCount as number) * SEGMENT);
  const partial = status.partial as { fraction: number } | null;
  assert.ok(partial === null || (partial.fraction >= 0 && partial.fraction <= 1));

  const withServer = await runShell(substitute(example("status-server")));
  assert.equal(withServer.status, 0, withServer.stderr);
  assert.match(withServer.stdout, /\d+ bytes behind the server/);
});

test("cleanup --keep 7d --dry-run and cleanup --before ….backup, on a copy of the archive", async () => {
  const copy = join(workDir, "archive-cleanup");
  await cp(dirs.archive, copy, { recursive: true });
  const before = await completeSegments(copy);
  const partials = (names: string[]) => names.filter((name) => name.endsWith(".partial")).sort();
  const partialsBefore = partials(await readdir(copy));
  assert.ok(before.length >= 3, `complete segments: ${before}`);
  const onCopy = (text: string) => substitute(text).replaceAll(dirs.archive, copy);
  // All but the two newest completed eight days ago.
  const eightDaysAgo = new Date(Date.now() - 8 * 86_400_000);
  for (const name of before.slice(0, -2)) await utimes(join(copy, name), eightDaysAgo, eightDaysAgo);

  const dryRun = await runShell(onCopy(example("cleanup-keep")));
  assert.equal(dryRun.status, 0, dryRun.stderr);
  for (const name of before.slice(0, -2)) assert.match(dryRun.stdout, new RegExp(`would remove ${name}\n`));
  assert.equal(dryRun.stdout.match(/would remove [0-9A-F]{24}\n/g)?.length, before.length - 2);
  assert.deepEqual(await completeSegments(copy), before, "a dry run removes nothing");

  const removed = await runShell(onCopy(example("cleanup-before")));
  assert.equal(removed.status, 0, removed.stderr);
  const newest = before.at(-1)!;
  assert.deepEqual(
    await completeSegments(copy),
    before.filter((name) => name.slice(8) >= "0000000000000003" || name === newest),
  );
  assert.deepEqual(partials(await readdir(copy)), partialsBefore, "every .partial stays");
});

test("restore_command: the server's call restores a segment into pg_wal; a missing one exits 1 silently", async () => {
  const setting = example("restore-command");
  const command = /^restore_command = '(.*)'$/.exec(substitute(setting))?.[1];
  assert.ok(command !== undefined, setting);
  const segment = (await completeSegments(dirs.archive)).at(-1)!;
  // The server runs it with /bin/sh in its data directory, %f the file it wants, %p pg_wal/RECOVERYXLOG.
  const dataDir = join(workDir, "recovering-data");
  await mkdir(join(dataDir, "pg_wal"), { recursive: true });
  const asServerRunsIt = (file: string) =>
    command.replaceAll("%f", file).replaceAll("%p", "pg_wal/RECOVERYXLOG");
  const restored = await runShell(asServerRunsIt(segment), { cwd: dataDir });
  assert.equal(restored.status, 0, restored.stderr);
  assert.equal(restored.stdout + restored.stderr, "");
  assert.deepEqual(
    await readFile(join(dataDir, "pg_wal", "RECOVERYXLOG")),
    await readFile(join(dirs.archive, segment)),
  );
  const missing = await runShell(asServerRunsIt("00000001000000FF000000FF"), { cwd: dataDir });
  assert.equal(missing.status, 1);
  assert.equal(missing.stdout + missing.stderr, "");
});

test('ln -s "$(command -v pgwal)" …/pg_receivewal: the drop-in speaks and streams as pg_receivewal', {
  timeout: 40_000,
}, async () => {
  const linked = await runShell(substitute(example("drop-in")));
  assert.equal(linked.status, 0, linked.stderr);
  const dropIn = join(dirs.bin, "pg_receivewal");
  assert.ok((await lstat(dropIn)).isSymbolicLink());
  assert.equal(await readlink(dropIn), join(dirs.bin, "pgwal"));

  const version = await runShell("pg_receivewal --version");
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /^pg_receivewal \(PostgreSQL\) \d+/);
  const usage = await runShell("pg_receivewal --create-slot");
  assert.equal(usage.status, 1);
  assert.match(usage.stderr, /^pg_receivewal: error: /);

  // And it streams like pg_receivewal would: up to --endpos, then exit 0.
  const dir = join(workDir, "drop-in-archive");
  await mkdir(dir);
  const end = parseLsn(await switchSegments(2));
  const streamed = await runShell(
    `pg_receivewal -D ${dir} -E ${formatLsn(end)} -n -h 127.0.0.1 -p ${cluster.port} -U ${USER}`,
  );
  assert.equal(streamed.status, 0, streamed.stderr);
  assert.ok((await readdir(dir)).length >= 1);
});

test("the library example type-checks against the built package and streams (segment and flushed events)", {
  timeout: 60_000,
}, async () => {
  assert.ok(LIBRARY_EXAMPLE !== undefined, "README has a ```ts example");
  // "/archive" held the lz4 example's files; the library example starts it afresh.
  await rm(dirs.slashArchive, { recursive: true });
  await mkdir(dirs.slashArchive, { mode: 0o700 });
  const appDir = join(workDir, "library-app");
  const modules = join(appDir, "node_modules");
  await mkdir(join(modules, "@types"), { recursive: true });
  // The app depends on pgwal as a package (main/types of package.json), plus pino for `logger`.
  await symlink(PROJECT_ROOT, join(modules, "pgwal"));
  await symlink(join(PROJECT_ROOT, "node_modules", "pino"), join(modules, "pino"));
  await symlink(join(PROJECT_ROOT, "node_modules", "@types", "node"), join(modules, "@types", "node"));
  await writeFile(join(appDir, "package.json"), JSON.stringify({ type: "module" }));
  await writeFile(
    join(appDir, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: {
        target: "ES2022",
        module: "NodeNext",
        moduleResolution: "NodeNext",
        strict: true,
        types: ["node"],
        skipLibCheck: true,
        outDir: "out",
      },
      include: ["example.ts"],
    }),
  );
  const source = substitute(LIBRARY_EXAMPLE!);
  await writeFile(join(appDir, "example.ts"), source);
  const tsc = await new Promise<Finished>((resolve) => {
    const child = spawn(
      process.execPath,
      [join(PROJECT_ROOT, "node_modules", "typescript", "bin", "tsc"), "-p", appDir],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.on("close", (status, signal) => resolve({ status, signal, stdout: out, stderr: "" }));
  });
  assert.equal(tsc.status, 0, `tsc on the README example:\n${tsc.stdout}\n${source}`);

  const run = startShell(`${process.execPath} ${join(appDir, "out", "example.js")}`, { cwd: appDir });
  try {
    await waitFor(
      "the slot to be in use",
      async () =>
        (await cluster.sql("SELECT active FROM pg_replication_slots WHERE slot_name = 'pgwal_slot'")) === "t"
          ? true
          : undefined,
      20_000,
      run,
    );
    await switchSegments(2);
    await waitFor(
      'a "completed" and a "durable up to" line',
      () => {
        const { stdout } = run.output();
        return /^completed [0-9A-F]{24} /m.test(stdout) && /^durable up to /m.test(stdout) ? true : undefined;
      },
      20_000,
      run,
    );
  } finally {
    await stopCleanly(run);
  }
  const completed = /^completed ([0-9A-F]{24}) /m.exec(run.output().stdout)![1]!;
  assert.ok(existsSync(join(dirs.slashArchive, completed)), `${completed} is in the example's directory`);
});

test("npm run demo: the built demo streams into an archive and says what it archived", {
  timeout: 120_000,
}, async () => {
  const archive = join(workDir, "demo-archive");
  const demo = await new Promise<Finished>((resolve) => {
    const child = spawn(process.execPath, [join(PROJECT_ROOT, "dist", "demo", "demo.js"), archive], {
      cwd: workDir,
      env: { PATH: process.env.PATH, HOME: dirs.home },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 110_000);
    child.on("close", (status, signal) => {
      clearTimeout(timer);
      children.delete(child);
      resolve({ status, signal, stdout, stderr });
    });
  });
  assert.equal(demo.status, 0, demo.stdout + demo.stderr);
  const out = demo.stdout;
  assert.match(out, /created slot pgwal_demo at [0-9A-F]+\/[0-9A-F]+/);
  assert.match(out, /running: pgwal receive -D .* --slot pgwal_demo --endpos [0-9A-F]+\/[0-9A-F]+ --no-loop/);
  assert.ok(out.includes(`archive ${archive}:`), out);
  const summary = /streamed ([0-9A-F]+\/[0-9A-F]+) → ([0-9A-F]+\/[0-9A-F]+): (\d+) complete segments/.exec(
    out,
  );
  assert.ok(summary !== null, out);
  assert.ok(parseLsn(summary[2]!) > parseLsn(summary[1]!));
  const complete = await completeSegments(archive);
  assert.equal(complete.length, Number(summary[3]));
  assert.ok(complete.length >= 2, `40 MB of WAL make at least two 16 MB segments: ${complete}`);
  // Each complete segment is listed with its LSN range and size.
  for (const name of complete) {
    const start =
      BigInt(`0x${name.slice(8, 16)}`) * 0x100000000n + BigInt(`0x${name.slice(16, 24)}`) * 0x1000000n;
    const line = `${name.padEnd(34)} ${formatLsn(start)} – ${formatLsn(start + 0x1000000n)}`;
    assert.ok(out.includes(line), `the demo lists ${line}`);
    assert.match(out, new RegExp(`${name} .* 16777216 bytes`));
  }
  const verified = await runShell(`pgwal verify ${archive}`);
  assert.equal(verified.status, 0, verified.stdout + verified.stderr);
});
