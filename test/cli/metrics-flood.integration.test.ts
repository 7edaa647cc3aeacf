/**
 * Idle clients of --metrics-listen must not take the file descriptors the archive needs. The
 * receiver runs with a small descriptor limit (prlimit), and far more idle connections than it
 * could hold are opened: the ones beyond the listener's cap are closed, and segments keep being
 * completed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readdir, rm } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { waitFor } from "../support/wait-for.js";
import { jsonLogLines, runPgwal } from "./cli-harness.js";

let cluster: PgCluster;
let workDir: string;

before(async () => {
  cluster = await startSharedCluster({
    name: "cli-metrics-flood",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "64MB" },
  });
  workDir = await mkdtemp(join(tmpdir(), "pgwal-metrics-flood-"));
});

after(async () => {
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

const DESCRIPTOR_LIMIT = 96;
const IDLE_CONNECTIONS = 200;

test("idle metrics connections beyond the cap are closed and the receiver keeps completing segments", {
  timeout: 90_000,
}, async (t) => {
  if (spawnSync("prlimit", ["--version"]).error) return t.skip("prlimit is not installed");
  const archive = join(workDir, "archive");
  await mkdir(archive);
  let child: ChildProcess | undefined;
  let stderrSoFar = "";
  const run = runPgwal(
    [
      "receive",
      "-D",
      archive,
      "-s",
      "1",
      "-v",
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
      onStart: (c) => {
        child = c;
      },
      onStderr: (stderr) => {
        stderrSoFar = stderr;
      },
      timeoutMs: 80_000,
    },
  );
  const sockets: Socket[] = [];
  try {
    const limited = spawnSync("prlimit", [
      "--pid",
      String(child!.pid),
      `--nofile=${DESCRIPTOR_LIMIT}:${DESCRIPTOR_LIMIT}`,
    ]);
    assert.equal(limited.status, 0, limited.stderr.toString());
    const logLines = () =>
      jsonLogLines(
        stderrSoFar
          .split("\n")
          .filter((l) => l.endsWith("}"))
          .join("\n"),
      );
    const port = await waitFor(
      "the metrics listen line",
      () => logLines().find((l) => typeof l.port === "number")?.port as number | undefined,
    );
    await waitFor("streaming", () =>
      logLines().some((l) => String(l.msg).startsWith("starting log streaming")) ? true : undefined,
    );
    let closed = 0;
    for (let i = 0; i < IDLE_CONNECTIONS; i++) {
      const socket = connect({ host: "127.0.0.1", port });
      socket.on("error", () => {});
      socket.on("close", () => closed++);
      sockets.push(socket);
    }
    await cluster.generateWal(4);
    const complete = await waitFor(
      "four completed segments",
      async () => {
        const names = (await readdir(archive)).filter((n) => /^[0-9A-F]{24}$/.test(n));
        return names.length >= 4 ? names : undefined;
      },
      40_000,
    );
    assert.ok(complete.length >= 4);
    assert.equal(child!.exitCode, null, `the receiver exited: ${stderrSoFar}`);
    assert.ok(
      closed >= IDLE_CONNECTIONS - 32,
      `only ${closed} of ${IDLE_CONNECTIONS} idle connections closed`,
    );
    assert.doesNotMatch(stderrSoFar, /EMFILE/);
  } finally {
    for (const socket of sockets) socket.destroy();
    child?.kill("SIGTERM");
  }
  const result = await run;
  assert.equal(result.status, 0, result.stderr);
});
