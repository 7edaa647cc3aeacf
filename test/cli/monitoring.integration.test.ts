/**
 * `pgwal receive` as a service: --metrics-listen (Prometheus scrape while streaming, /healthz),
 * NOTIFY_SOCKET (READY=1, WATCHDOG=1, STOPPING=1 through a unix datagram socket held by a python3
 * helper, as systemd would), and --on-segment hooks with --hook-holds-slot, all through the CLI.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { parseLsn } from "../../src/lsn.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { startNotifySocket } from "../support/notify-socket.js";
import { waitFor } from "../support/wait-for.js";
import { jsonLogLines, runPgwal } from "./cli-harness.js";

let cluster: PgCluster;
let workDir: string;
/** Helper processes, ended after the file whatever happened. */
const helpers: ChildProcess[] = [];

before(async () => {
  cluster = await startSharedCluster({
    name: "cli-monitor",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "64MB" },
  });
  workDir = await mkdtemp(join(tmpdir(), "pgwal-cli-monitor-"));
});

after(async () => {
  for (const helper of helpers) helper.kill();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

function metricValue(text: string, name: string): number | undefined {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `) || l.startsWith(`${name}{`));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(" ") + 1));
}

test("metrics, health, systemd notifications and segment hooks of a running receiver", {
  timeout: 55_000,
}, async () => {
  const archive = join(workDir, "archive");
  await import("node:fs/promises").then((fs) => fs.mkdir(archive));
  const hookLog = join(workDir, "hooked.log");
  const failOnce = join(workDir, "fail-once");
  await writeFile(failOnce, "");
  const stateFile = join(workDir, "hooks-state.json");
  await cluster.sql("SELECT pg_create_physical_replication_slot('cli_monitor', true)");
  const notify = await startNotifySocket(join(workDir, "notify.sock"));
  helpers.push(notify.child);

  // README: pgwal receive … --on-segment 'cp %p /mnt/wal-copy/%f' --hook-holds-slot --metrics-listen 127.0.0.1:9187
  // The hook fails on its first run (failOnce exists), then logs each file name.
  const hook = `if [ -e ${failOnce} ]; then rm ${failOnce}; exit 1; fi; echo %f >> ${hookLog}`;
  let child: ChildProcess | undefined;
  const run = runPgwal(
    [
      "receive",
      "-D",
      archive,
      "-S",
      "cli_monitor",
      "-s",
      "1",
      "-v",
      "--on-segment",
      hook,
      "--hook-holds-slot",
      "--hook-state-file",
      stateFile,
      "--metrics-listen",
      "127.0.0.1:0",
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      TEST_USERS.trust.name,
    ],
    {
      env: { NOTIFY_SOCKET: join(workDir, "notify.sock"), WATCHDOG_USEC: "1000000" },
      onStart: (c) => {
        child = c;
      },
      timeoutMs: 50_000,
    },
  );
  let stderrSoFar = "";
  child!.stderr!.on("data", (chunk: Buffer) => {
    stderrSoFar += chunk.toString("utf8");
  });
  try {
    const port = await waitFor("the metrics listen line", () => {
      const line = jsonLogLines(
        stderrSoFar
          .split("\n")
          .filter((l) => l.endsWith("}"))
          .join("\n"),
      ).find((l) => typeof l.port === "number");
      return line?.port as number | undefined;
    });
    const base = `http://127.0.0.1:${port}`;
    await waitFor("READY=1", () => (notify.messages.some((m) => m.startsWith("READY=1")) ? true : undefined));
    const scrape = async () => {
      const response = await fetch(`${base}/metrics`);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type") ?? "", /^text\/plain/);
      return response.text();
    };
    const first = await scrape();
    const flushedBefore = metricValue(first, "pgwal_flushed_lsn_bytes")!;
    assert.ok(flushedBefore > 0, first);
    assert.equal(metricValue(first, "pgwal_streaming"), 1);

    await cluster.generateWal(3);
    const serverNow = Number(parseLsn(await cluster.sql("SELECT pg_current_wal_lsn()")));
    const later = await waitFor("flushed to reach the server's position", async () => {
      const text = await scrape();
      return (metricValue(text, "pgwal_flushed_lsn_bytes") ?? 0) >= serverNow ? text : undefined;
    });
    assert.ok(metricValue(later, "pgwal_flushed_lsn_bytes")! > flushedBefore, "flushed LSN advanced");
    assert.ok(metricValue(later, "pgwal_segments_completed_total")! >= 3);
    assert.ok(metricValue(later, "pgwal_server_end_lsn_bytes")! >= serverNow);
    assert.ok((metricValue(later, "pgwal_last_message_age_seconds") ?? -1) >= 0);
    assert.match(later, /pgwal_fsync_duration_seconds_count\{kind="segment_end"\} [1-9]/);
    assert.equal(metricValue(later, "pgwal_reconnects_total"), 0);

    const health = await fetch(`${base}/healthz`);
    assert.equal(health.status, 200);
    assert.match(await health.text(), /^ok: streaming/);
    assert.equal((await fetch(`${base}/nothing`)).status, 404);

    // Hooks: the failed first run is counted and retried; then every segment is hooked in order.
    const hooked = await waitFor("hooks of three segments", async () => {
      const lines = (await readFile(hookLog, "utf8").catch(() => "")).split("\n").filter(Boolean);
      return lines.length >= 3 ? lines : undefined;
    });
    assert.deepEqual([...hooked].sort(), hooked, "hooked in stream order");
    assert.equal(metricValue(await scrape(), "pgwal_hook_failures_total"), 1);
    // A file counts as done once its hook has exited, which is just after the hook wrote its line.
    const state = await waitFor("three hooked segments recorded in the state file", async () => {
      const saved = JSON.parse(await readFile(stateFile, "utf8").catch(() => '{"done":[]}')) as {
        done: string[];
        heldUpTo?: string;
      };
      return saved.done.length >= 3 ? saved : undefined;
    });
    assert.ok(state.heldUpTo !== undefined, JSON.stringify(state));
    assert.deepEqual(
      state.done.slice(0, 3),
      hooked.slice(0, 3),
      "the state records the hooked files in order",
    );
    // --hook-holds-slot: the slot never passes the end of the last hooked segment.
    const restart = parseLsn(
      await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'cli_monitor'"),
    );
    const held = parseLsn((JSON.parse(await readFile(stateFile, "utf8")) as { heldUpTo: string }).heldUpTo);
    assert.ok(restart <= held, `slot restart ${restart} <= held ${held}`);

    await waitFor("a watchdog ping", () => (notify.messages.includes("WATCHDOG=1") ? true : undefined));
    assert.ok(
      notify.messages.some((m) => /^READY=1\|STATUS=streaming from /.test(m)),
      notify.messages.join("\n"),
    );
  } finally {
    child?.kill("SIGTERM");
  }
  try {
    const result = await run;
    assert.equal(result.status, 0, result.stderr);
    await waitFor("STOPPING=1", () =>
      notify.messages.some((m) => m.startsWith("STOPPING=1")) ? true : undefined,
    );
  } finally {
    notify.child.kill();
  }
  await cluster.sql("SELECT pg_drop_replication_slot('cli_monitor')");
});

test("--metrics-listen on a port in use: exit 1 with one clear line", async () => {
  const archive = await mkdtemp(join(workDir, "busy-"));
  const { createServer } = await import("node:net");
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const result = await runPgwal([
      "receive",
      "-D",
      archive,
      "--metrics-listen",
      `127.0.0.1:${port}`,
      "-n",
      "-h",
      "127.0.0.1",
      "-p",
      String(cluster.port),
      "-U",
      TEST_USERS.trust.name,
    ]);
    assert.equal(result.status, 1);
    assert.match(
      result.stderr,
      new RegExp(`^pgwal: error: could not listen on 127\\.0\\.0\\.1:${port} for metrics: .*EADDRINUSE`, "m"),
    );
  } finally {
    blocker.close();
  }
});
