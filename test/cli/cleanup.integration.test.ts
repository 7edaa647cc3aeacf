/**
 * `pgwal cleanup` and `pgwal receive --retention` on archives streamed from a real server: the
 * receiver's lock stops a cleanup (unless --force), and retention removes old segments as new ones
 * complete, but never one whose hook has not succeeded.
 */
import assert from "node:assert/strict";
import { mkdir, mkdtemp, readdir, rm, utimes } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { formatLsn, parseLsn } from "../../src/lsn.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { runPgwal } from "./cli-harness.js";

const SEGMENT = 1024n * 1024n;
let cluster: PgCluster;
let workDir: string;

function connectionArgs(): string[] {
  return ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", TEST_USERS.trust.name];
}

/** Writes a little WAL and switches segment `count` times; the position after. */
function switchSegments(count: number): Promise<string> {
  return cluster.sql(
    [
      "CREATE TABLE IF NOT EXISTS cleanup_tick (i int);",
      `DO $$ BEGIN FOR i IN 1..${count} LOOP INSERT INTO cleanup_tick VALUES (i); PERFORM pg_switch_wal(); END LOOP; END $$;`,
      "SELECT pg_current_wal_lsn();",
    ].join("\n"),
  );
}

async function completeSegments(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort();
}

/** An archive with a few complete segments, all made to look `ageHours` old. */
async function agedArchive(name: string, ageHours: number): Promise<{ dir: string; old: string[] }> {
  const dir = join(workDir, name);
  await mkdir(dir);
  // Streaming starts at the server's current segment: make the WAL once it has started.
  const start = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
  const endpos = (start / SEGMENT + 3n) * SEGMENT;
  let generating: Promise<string> | undefined;
  const run = await runPgwal(
    ["receive", "-D", dir, "-E", formatLsn(endpos), "-n", "-v", ...connectionArgs()],
    {
      onStderr: (stderr) => {
        if (generating === undefined && stderr.includes("starting log streaming"))
          generating = switchSegments(3);
      },
    },
  );
  await generating;
  assert.equal(run.status, 0, run.stderr);
  const old = await completeSegments(dir);
  assert.ok(old.length >= 2, `complete segments: ${old}`);
  const then = new Date(Date.now() - ageHours * 3_600_000);
  for (const file of await readdir(dir)) await utimes(join(dir, file), then, then);
  return { dir, old };
}

before(async () => {
  cluster = await startSharedCluster({
    name: "cli-cleanup",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "64MB" },
  });
  workDir = await mkdtemp(join(tmpdir(), "pgwal-cli-cleanup-"));
});

after(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test("cleanup refuses while a receiver is writing the archive, names its pid, and runs with --force", async () => {
  const { dir, old } = await agedArchive("live", 2);
  let cleanupWhileLive: Promise<Awaited<ReturnType<typeof runPgwal>>[]> | undefined;
  const receiving = runPgwal(["receive", "-D", dir, "-v", ...connectionArgs()], {
    onStderr: (stderr, child) => {
      if (cleanupWhileLive !== undefined || !stderr.includes("starting log streaming")) return;
      cleanupWhileLive = (async () => {
        const results = [
          await runPgwal(["cleanup", dir, "--keep", "1h"]),
          await runPgwal(["cleanup", dir, "--keep", "1h", "--dry-run"]),
          await runPgwal(["cleanup", dir, "--keep", "1h", "--force"]),
        ];
        child.kill("SIGTERM");
        return results;
      })();
    },
  });
  const received = await receiving;
  assert.ok(cleanupWhileLive !== undefined, received.stderr);
  const [refused, dryRun, forced] = await cleanupWhileLive;
  assert.equal(received.status, 0, received.stderr);

  assert.equal(refused!.status, 1, refused!.stdout);
  assert.equal(refused!.stdout, "");
  assert.match(
    refused!.stderr,
    /^pgwal: error: a receiver \(pid \d+\) is writing archive ".*"; stop it, or use --force\n$/,
  );
  assert.equal(dryRun!.status, 0, dryRun!.stderr);
  assert.match(dryRun!.stdout, new RegExp(`would remove ${old[0]}\\n`));
  assert.equal(forced!.status, 0, forced!.stderr);
  assert.match(forced!.stdout, new RegExp(`removed ${old[0]}\\n`));
  const left = await completeSegments(dir);
  assert.ok(!left.includes(old[0]!), `${old[0]} removed: ${left}`);

  // The receiver has exited: its lock went with it.
  const after = await runPgwal(["cleanup", dir, "--keep", "1h", "--json"]);
  assert.equal(after.status, 0, after.stderr);
  const result = JSON.parse(after.stdout) as { dryRun: boolean; remove: unknown[]; oldestKept: string };
  assert.equal(result.dryRun, false);
  assert.ok(result.oldestKept !== null);
});

test("cleanup: wrong usage and a missing directory are one line and exit 1", async () => {
  const none = await runPgwal(["cleanup", join(workDir, "no-such-archive"), "--keep", "1d"]);
  assert.equal(none.status, 1);
  assert.match(none.stderr, /^pgwal: error: could not stat file ".*no-such-archive": ENOENT[^\n]*\n$/);
  const nothing = await runPgwal(["cleanup", workDir]);
  assert.equal(nothing.status, 1);
  assert.equal(nothing.stderr, "pgwal: error: say what to keep: --before WALFILE and/or --keep DURATION\n");
  const badName = await runPgwal(["cleanup", workDir, "--before", "../etc/passwd"]);
  assert.equal(badName.status, 1);
  assert.equal(badName.stderr, 'pgwal: error: invalid WAL file name "../etc/passwd" for option --before\n');
  const badDuration = await runPgwal(["cleanup", workDir, "--keep", "soon"]);
  assert.equal(badDuration.status, 1);
  assert.match(badDuration.stderr, /invalid duration "soon" for option --keep/);
});

test("receive --retention removes segments completed before the window as new ones complete", async () => {
  const { dir, old } = await agedArchive("retention", 2);
  const end = await switchSegments(2);
  const run = await runPgwal([
    "receive",
    "-D",
    dir,
    "-E",
    end,
    "-n",
    "--retention",
    "1h",
    ...connectionArgs(),
  ]);
  assert.equal(run.status, 0, run.stderr);
  const left = await completeSegments(dir);
  for (const name of old) assert.ok(!left.includes(name), `${name} (2 h old) removed: ${left}`);
  assert.ok(left.length >= 2, `the new segments stay: ${left}`);
});

test("receive --retention never removes a segment whose hook has not succeeded", async () => {
  const { dir, old } = await agedArchive("retention-hook", 2);
  const end = await switchSegments(2);
  const run = await runPgwal([
    "receive",
    "-D",
    dir,
    "-E",
    end,
    "-n",
    "--retention",
    "1h",
    "--on-segment",
    "exit 1",
    "--hook-state-file",
    join(workDir, "hook-state.json"),
    ...connectionArgs(),
  ]);
  assert.equal(run.status, 0, run.stderr);
  const left = await completeSegments(dir);
  for (const name of old) assert.ok(left.includes(name), `${name} kept for its hook: ${left}`);
});
