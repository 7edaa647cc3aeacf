import assert from "node:assert/strict";
import { test } from "node:test";
import type { ArchiveStatus } from "../../src/archive/status.js";
import { healthOf } from "../../src/cli/metrics.js";
import { parseListenAddress, parseReceiveArgs } from "../../src/cli/options.js";
import { formatDuration, formatProgress, ProgressLine } from "../../src/cli/progress-line.js";
import { describePosition } from "../../src/cli/receive-command.js";
import { checkServerVersionForStreaming, maxStreamingServerMajor } from "../../src/cli/server-version.js";
import { compareWithServer } from "../../src/cli/status-command.js";
import { SystemdNotifier, watchdogIntervalMs } from "../../src/cli/systemd-notify.js";
import { UsageError } from "../../src/errors.js";
import { parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";

const asPgwal = { programName: "pgwal" };

test("server version rule: 9.3 up to the compatible major, pg_receivewal's messages", () => {
  assert.equal(maxStreamingServerMajor("18.1"), 1800);
  checkServerVersionForStreaming(90300, "9.3.25");
  checkServerVersionForStreaming(180004, "18.4");
  assert.throws(
    () => checkServerVersionForStreaming(90224, "9.2.24"),
    (error: unknown) =>
      error instanceof UsageError &&
      error.message ===
        "incompatible server version 9.2.24; client does not support streaming from server versions older than 9.3",
  );
  assert.throws(
    () => checkServerVersionForStreaming(190000, "19devel"),
    /^UsageError: incompatible server version 19devel; client does not support streaming from server versions newer than 18\.1$/,
  );
  assert.throws(() => checkServerVersionForStreaming(0, undefined), /server version 'unknown'/);
});

test("--metrics-listen needs HOST:PORT; IPv6 in brackets; port 0 allowed", () => {
  assert.deepEqual(parseListenAddress("127.0.0.1:9187"), { host: "127.0.0.1", port: 9187 });
  assert.deepEqual(parseListenAddress("[::1]:0"), { host: "::1", port: 0 });
  assert.deepEqual(parseListenAddress("localhost:80"), { host: "localhost", port: 80 });
  for (const bad of ["9187", ":9187", "host:", "host:65536", "::1:80", "host:80x"])
    assert.equal(parseListenAddress(bad), undefined, bad);
  const parsed = parseReceiveArgs(["-D", "d", "--metrics-listen", "nope"], asPgwal);
  assert.equal(parsed.kind, "usage-error");
});

test("hook options: from the command line and PGWAL_* variables, with their checks", () => {
  const parsed = parseReceiveArgs(
    ["-D", "d", "-S", "s", "--on-segment", "cp %p /x/%f", "--hook-holds-slot"],
    asPgwal,
  );
  assert.equal(parsed.kind, "run");
  if (parsed.kind !== "run") return;
  assert.equal(parsed.args.onSegment, "cp %p /x/%f");
  assert.equal(parsed.args.hookHoldsSlot, true);
  assert.equal(parsed.args.hookStateFile, undefined);

  const fromEnv = parseReceiveArgs([], {
    programName: "pgwal",
    env: {
      PGWAL_DIRECTORY: "d",
      PGWAL_ON_SEGMENT: "true",
      PGWAL_HOOK_STATE_FILE: "/s.json",
      PGWAL_METRICS_LISTEN: "127.0.0.1:9187",
    },
  });
  assert.equal(fromEnv.kind, "run");
  if (fromEnv.kind !== "run") return;
  assert.equal(fromEnv.args.onSegment, "true");
  assert.equal(fromEnv.args.hookStateFile, "/s.json");
  assert.deepEqual(fromEnv.args.metricsListen, { host: "127.0.0.1", port: 9187 });

  const noHook = parseReceiveArgs(["-D", "d", "-S", "s", "--hook-holds-slot"], asPgwal);
  assert.equal(noHook.kind, "usage-error");
  assert.match((noHook as { message: string }).message, /--hook-holds-slot needs a hook/);
  const noSlot = parseReceiveArgs(["-D", "d", "--on-segment", "true", "--hook-holds-slot"], asPgwal);
  assert.match((noSlot as { message: string }).message, /needs a slot/);
});

test("health: streaming and a message within max(2 × status interval, 60 s)", () => {
  const now = 1_000_000;
  assert.equal(
    healthOf({ streaming: false, lastMessageAt: now, statusIntervalSeconds: 10, now }).healthy,
    false,
  );
  assert.equal(
    healthOf({ streaming: true, lastMessageAt: 0, statusIntervalSeconds: 10, now }).healthy,
    false,
  );
  assert.equal(
    healthOf({ streaming: true, lastMessageAt: now - 59_000, statusIntervalSeconds: 10, now }).healthy,
    true,
  );
  assert.equal(
    healthOf({ streaming: true, lastMessageAt: now - 61_000, statusIntervalSeconds: 10, now }).healthy,
    false,
  );
  // A short interval still allows 60 s (the receiver asks for a keepalive after 30 s of silence);
  // a long one allows twice itself.
  assert.equal(
    healthOf({ streaming: true, lastMessageAt: now - 45_000, statusIntervalSeconds: 1, now }).healthy,
    true,
  );
  assert.equal(
    healthOf({ streaming: true, lastMessageAt: now - 110_000, statusIntervalSeconds: 60, now }).healthy,
    true,
  );
  assert.equal(
    healthOf({ streaming: true, lastMessageAt: now - 130_000, statusIntervalSeconds: 60, now }).healthy,
    false,
  );
});

test("progress line: behind, rate, time left; redrawn in place and cleared", () => {
  assert.equal(formatDuration(59), "0:59");
  assert.equal(formatDuration(3723), "1:02:03");
  const text = formatProgress(
    { received: parseLsn("0/1000000"), serverEnd: parseLsn("0/2000000"), timeline: 1 },
    4_000_000,
  );
  assert.equal(text, "received 0/1000000 of 0/2000000 (timeline 1), 16.8 MB behind, 4.0 MB/s, 0:04 left");
  assert.match(formatProgress({ received: 5n, serverEnd: 5n, timeline: 2 }, 0), /caught up/);

  const written: string[] = [];
  let clock = 0;
  let received = 0n;
  const line = new ProgressLine({
    write: (t) => written.push(t),
    sample: () => ({ received, serverEnd: 10_000_000n, timeline: 1 }),
    now: () => clock,
  });
  line.draw();
  clock = 1000;
  received = 2_000_000n;
  line.draw();
  assert.ok(written[1]!.startsWith("\r"), "redrawn in place");
  assert.ok(written[1]!.endsWith("2.0 MB/s, 0:04 left\u001b[K"), written[1]);
  const logged: string[] = [];
  line.wrapLogger({ ...silentLogger, warn: (_f, m) => logged.push(m) }).warn({}, "hello");
  assert.equal(written.at(-1), "\r\u001b[K", "the line is erased before a log line");
  assert.deepEqual(logged, ["hello"]);
});

test("systemd: no NOTIFY_SOCKET, no messages; READY once; STATUS only on change; STOPPING; watchdog interval", async () => {
  const sent: string[][] = [];
  const send = async (a: readonly string[]) => {
    sent.push([...a]);
  };
  const off = new SystemdNotifier({ env: {}, logger: silentLogger, send });
  await off.ready("x");
  assert.equal(off.enabled, false);
  assert.deepEqual(sent, []);

  const on = new SystemdNotifier({ env: { NOTIFY_SOCKET: "@test" }, logger: silentLogger, send });
  await on.ready("streaming\nnow");
  await on.ready("streaming again");
  await on.status("streaming again");
  await on.stopping("bye");
  assert.deepEqual(sent, [
    ["READY=1", "STATUS=streaming now"],
    ["STATUS=streaming again"],
    ["STOPPING=1", "STATUS=bye"],
  ]);

  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "60000000" }, 1), 30_000);
  assert.equal(watchdogIntervalMs({ WATCHDOG_USEC: "60000000", WATCHDOG_PID: "2" }, 1), undefined);
  assert.equal(watchdogIntervalMs({}, 1), undefined);

  const warnings: string[] = [];
  const failing = new SystemdNotifier({
    env: { NOTIFY_SOCKET: "/x" },
    logger: { ...silentLogger, warn: (_f, m) => warnings.push(m) },
    send: async () => {
      throw new Error("no such program");
    },
  });
  await failing.ready("a");
  await failing.status("b");
  assert.equal(warnings.length, 1, "a failing sender is reported once");
});

test("status: lag against the server, refused for another cluster", () => {
  const status = {
    systemIdentifier: "7",
    lastLsn: "0/3000000",
    timelines: [{ timeline: 1 }],
  } as unknown as ArchiveStatus;
  assert.deepEqual(compareWithServer(status, { systemIdentifier: "7", timeline: 1, position: "0/3000100" }), {
    lagBytes: 256,
    notes: [],
  });
  const other = compareWithServer(status, { systemIdentifier: "8", timeline: 1, position: "0/3000100" });
  assert.equal(other.lagBytes, null);
  assert.match(other.notes[0]!, /database system 7, the server is 8/);
  assert.match(
    describePosition({
      timeline: 1,
      received: 16n,
      written: 16n,
      flushed: 8n,
      serverEnd: 32n,
      lastMessageAt: 1,
      segmentSize: 16,
    }),
    /flushed 0\/8, server 0\/20 \(lag 24 bytes\)/,
  );
});
