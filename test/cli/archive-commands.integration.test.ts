/**
 * restore, verify and status through the built executable (`node bin/pgwal …`), on a small archive
 * that `pgwal receive` streamed from a real server. Each README example for these commands is run here.
 */
import assert from "node:assert/strict";
import { copyFile, mkdtemp, open, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { formatLsn, parseLsn } from "../../src/lsn.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { runPgwal } from "./cli-harness.js";

const SEGMENT = 1024 * 1024;
let cluster: PgCluster;
let workDir: string;
let archive: string;
let completeSegments: string[];

function connectionArgs(): string[] {
  return ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", TEST_USERS.trust.name];
}

before(async () => {
  cluster = await startSharedCluster({
    name: "cli-archive",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "64MB" },
  });
  workDir = await mkdtemp(join(tmpdir(), "pgwal-cli-archive-"));
  archive = join(workDir, "archive");
  await import("node:fs/promises").then((fs) => fs.mkdir(archive));
  const start = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
  const endpos = start + BigInt(2 * SEGMENT + SEGMENT / 2);
  let generating: Promise<string> | undefined;
  const received = await runPgwal(
    ["receive", "-D", archive, "-E", formatLsn(endpos), "-n", "-v", ...connectionArgs()],
    {
      onStderr: (stderr) => {
        if (generating === undefined && stderr.includes("starting log streaming"))
          generating = cluster.generateWal(4);
      },
    },
  );
  await generating;
  assert.equal(received.status, 0, received.stderr);
  // End the archive mid-segment whatever the batch sizes of that run were (a batch may carry the
  // stream past -E to a segment end): a little more WAL without a switch, streamed to its end.
  const tail = await cluster.sql(
    "CREATE TABLE IF NOT EXISTS cli_tail (t text); INSERT INTO cli_tail SELECT repeat('t', 200) FROM generate_series(1, 500); SELECT pg_current_wal_lsn()",
  );
  const resumed = await runPgwal(["receive", "-D", archive, "-E", tail, "-n", ...connectionArgs()]);
  assert.equal(resumed.status, 0, resumed.stderr);
  completeSegments = (await readdir(archive)).filter((name) => /^[0-9A-F]{24}$/.test(name)).sort();
  assert.ok(completeSegments.length >= 2, `complete segments: ${completeSegments}`);
});

after(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

test("restore %f %p: restores a segment byte for byte, silently; --directory or PGWAL_DIRECTORY", async () => {
  const name = completeSegments[0]!;
  const destination = join(workDir, "RECOVERYXLOG");
  // README: restore_command = 'pgwal restore --directory=/var/lib/pgwal/archive %f %p'
  const restored = await runPgwal(["restore", `--directory=${archive}`, name, destination]);
  assert.equal(restored.status, 0, restored.stderr);
  assert.equal(restored.stdout + restored.stderr, "");
  assert.deepEqual(await readFile(destination), await readFile(join(archive, name)));

  const viaEnv = join(workDir, "RECOVERYXLOG2");
  const fromEnv = await runPgwal(["restore", completeSegments[1]!, viaEnv], {
    env: { PGWAL_DIRECTORY: archive },
  });
  assert.equal(fromEnv.status, 0, fromEnv.stderr);
  assert.deepEqual(await readFile(viaEnv), await readFile(join(archive, completeSegments[1]!)));
});

test("restore: a file the archive does not have exits 1 and prints nothing", async () => {
  const missing = await runPgwal([
    "restore",
    "-D",
    archive,
    "000000010000000000000FFF",
    join(workDir, "nothing"),
  ]);
  assert.equal(missing.status, 1);
  assert.equal(missing.stdout, "");
  assert.equal(missing.stderr, "");
  const noHistory = await runPgwal(["restore", "-D", archive, "00000002.history", join(workDir, "nothing")]);
  assert.equal(noHistory.status, 1);
  assert.equal(noHistory.stderr, "");
});

test("restore: a corrupt segment exits 128 (stops the recovery) with one line on stderr; wrong usage too", async () => {
  const corrupt = await mkdtemp(join(workDir, "corrupt-"));
  const name = completeSegments[0]!;
  await copyFile(join(archive, name), join(corrupt, name));
  const handle = await open(join(corrupt, name), "r+");
  await handle.write(Buffer.from([0xde, 0xad]), 0, 2, 0); // page magic of the first page
  await handle.close();
  const result = await runPgwal(["restore", "-D", corrupt, name, join(workDir, "bad")]);
  assert.equal(result.status, 128);
  assert.equal(result.stdout, "");
  const lines = result.stderr.trimEnd().split("\n");
  assert.equal(lines.length, 1, result.stderr);
  assert.match(lines[0]!, /^pgwal: error: .*corrupt/);

  const verify = await runPgwal(["verify", corrupt]);
  assert.equal(verify.status, 1, verify.stdout);
  assert.match(verify.stdout, /problem/);

  const usage = await runPgwal(["restore", name]);
  assert.equal(usage.status, 128);
  assert.match(usage.stderr, /^pgwal: error: restore needs the WAL file name and the destination path/);
});

test("verify DIR, --json, --from/--to: a sound archive exits 0", async () => {
  // README: pgwal verify /var/lib/pgwal/archive
  const plain = await runPgwal(["verify", archive]);
  assert.equal(plain.status, 0, plain.stdout + plain.stderr);
  assert.match(plain.stdout, /: OK\n/);

  const json = await runPgwal(["verify", archive, "--json"]);
  assert.equal(json.status, 0);
  const report = JSON.parse(json.stdout) as { ok: boolean; filesChecked: number; problems: unknown[] };
  assert.equal(report.ok, true);
  assert.ok(report.filesChecked >= completeSegments.length);
  assert.deepEqual(report.problems, []);

  const first = completeSegments[0]!;
  const from = `${first.slice(8, 16).replace(/^0+(?=.)/, "")}/${(Number.parseInt(first.slice(16, 24), 16) * SEGMENT).toString(16).toUpperCase()}`;
  const to = formatLsn(parseLsn(from) + BigInt(2 * SEGMENT - 1));
  // README: pgwal verify /var/lib/pgwal/archive --from 0/3000000 --to 0/5000000 --json
  const ranged = await runPgwal(["verify", archive, "--from", from, "--to", to, "--json"]);
  assert.equal(ranged.status, 0, ranged.stdout);
  const rangedReport = JSON.parse(ranged.stdout) as { range: { missing: string[] } };
  assert.deepEqual(rangedReport.range.missing, []);

  const beyond = await runPgwal([
    "verify",
    archive,
    "--from",
    from,
    "--to",
    formatLsn(parseLsn(from) + BigInt(64 * SEGMENT)),
  ]);
  assert.equal(beyond.status, 1, "a range past the archive's end is reported as missing WAL");

  const badLsn = await runPgwal(["verify", archive, "--from", "x", "--to", to]);
  assert.equal(badLsn.status, 2);
  assert.match(badLsn.stderr, /invalid LSN "x" for option --from/);
});

test("status DIR: segments, partial, age; with a connection also the server's position and lag", async () => {
  // README: pgwal status /var/lib/pgwal/archive --json
  const json = await runPgwal(["status", archive, "--json"]);
  assert.equal(json.status, 0, json.stderr);
  const status = JSON.parse(json.stdout) as {
    segmentCount: number;
    partial: { fraction: number } | null;
    lastLsn: string;
    ageSeconds: number;
    timelines: { timeline: number }[];
  };
  assert.equal(status.segmentCount, completeSegments.length);
  assert.ok(status.partial !== null && status.partial.fraction > 0 && status.partial.fraction < 1);
  assert.deepEqual(
    status.timelines.map((t) => t.timeline),
    [1],
  );
  assert.ok(status.ageSeconds >= 0 && status.ageSeconds < 600);

  // README: pgwal status /var/lib/pgwal/archive -h db1 -U replicator
  const withServer = await runPgwal(["status", archive, ...connectionArgs()]);
  assert.equal(withServer.status, 0, withServer.stderr);
  assert.match(withServer.stdout, /^archive /);
  assert.match(withServer.stdout, /archive is \d+ bytes behind the server/);

  const serverJson = await runPgwal(["status", archive, "--json", ...connectionArgs()]);
  const combined = JSON.parse(serverJson.stdout) as { server: { position: string; lagBytes: number } };
  const serverNow = parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()"));
  assert.ok(parseLsn(combined.server.position) <= serverNow);
  // The archive's end is known to the page (a partial's last non-zero page), so it can lie a few
  // bytes past the server's position; the lag is then 0, never negative.
  const rawLag = Number(parseLsn(combined.server.position) - parseLsn(status.lastLsn));
  assert.equal(combined.server.lagBytes, Math.max(0, rawLag));

  const refused = await runPgwal(["status", archive, "-h", "127.0.0.1", "-p", "1", "-U", "x", "-w"]);
  assert.equal(refused.status, 1);
  assert.match(refused.stderr, /^pgwal: error: /);
});
