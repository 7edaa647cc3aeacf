/**
 * The receiver against a scripted fake server that misbehaves in ways a real PostgreSQL does not:
 * every fault must end in a typed error that names the problem (or, for valid input, in normal
 * streaming), never in a crash, a hang, or an archive file that holds bytes the server did not send.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, afterEach, describe, test } from "node:test";
import { PgConnection } from "../../src/connection/connection.js";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { AuthenticationError, ConnectionError, ProtocolError, ServerError } from "../../src/errors.js";
import { formatLsn, type Lsn } from "../../src/lsn.js";
import { hasControlCharacters } from "../../src/protocol/untrusted-text.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { type ReceiverExit, type ReceiverOptions, WalReceiver } from "../../src/receiver/receiver.js";
import { walFileName } from "../../src/wal/names.js";
import {
  authenticationOk,
  authenticationRequest,
  authenticationSasl,
  backendMessage,
  commandComplete,
  copyData,
  copyDone,
  errorResponse,
  keepalive,
  parameterStatus,
  readyForQuery,
  resultSet,
  xlogData,
} from "../support/backend-builders.js";
import {
  close,
  endOfTimelineResponse,
  expectMessage,
  FakeServer,
  type FakeServerOptions,
  pause,
  type RecordedStatus,
  readReplicationSlotResponse,
  replicationHandshake,
  reset,
  run,
  type ScriptStep,
  send,
  stall,
  startupResponse,
  streamStoppedResponse,
  waitUntil,
  walBytes,
  xlogStream,
} from "../support/fake-server.js";

// --- Process-level guard: nothing here may escape as an uncaught error. ---

const escaped: string[] = [];
const onUnhandled = (reason: unknown) => escaped.push(`unhandledRejection: ${String(reason)}`);
const onUncaught = (error: Error) => escaped.push(`uncaughtException: ${error.stack ?? error.message}`);
process.on("unhandledRejection", onUnhandled);
process.on("uncaughtException", onUncaught);

const SEGMENT = 1024 * 1024;
const SYSTEM_ID = 7_301_234_567_890_123_456n;
/** IDENTIFY_SYSTEM's position; streaming starts at its segment's start, 0/3000000 (segment 0x30 of 1 MiB). */
const SERVER_POSITION: Lsn = 0x3_00_0123n;
const START: Lsn = 0x3_00_0000n;
const IDENTITY = { systemId: SYSTEM_ID, timeline: 1, xlogpos: SERVER_POSITION, segmentSize: SEGMENT };

const servers: FakeServer[] = [];
const directories: string[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
});

after(async () => {
  await Promise.all(servers.splice(0).map((s) => s.close()));
  await Promise.all(directories.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function fakeServer(options: FakeServerOptions): Promise<FakeServer> {
  const server = await FakeServer.start(options);
  servers.push(server);
  return server;
}

function receiverFor(
  server: FakeServer,
  directory: string,
  options: Partial<ReceiverOptions> & { connectTimeout?: string; sslmode?: string } = {},
): WalReceiver {
  const { connectTimeout, sslmode, ...rest } = options;
  const overrides: Record<string, string> = {
    host: "127.0.0.1",
    port: String(server.port),
    user: "x",
    sslmode: sslmode ?? "disable",
  };
  if (connectTimeout !== undefined) overrides.connect_timeout = connectTimeout;
  return new WalReceiver({
    connection: resolveConnectionSettings({ overrides, forced: { replication: "true" }, env: {} }),
    directory,
    logger: silentLogger,
    noLoop: true,
    reconnectDelayMs: { initial: 50, max: 100 },
    ...rest,
  });
}

interface Outcome {
  exit?: ReceiverExit;
  error?: unknown;
  elapsedMs: number;
}

/** Runs the receiver to its end; a run that does not end within `limitMs` is a hang and fails the test. */
async function outcomeOf(receiver: WalReceiver, limitMs = 8000): Promise<Outcome> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<"hang">((resolve) => {
    timer = setTimeout(() => resolve("hang"), limitMs);
  });
  const settled = receiver.run().then(
    (exit) => ({ exit }),
    (error: unknown) => ({ error }),
  );
  const result = await Promise.race([settled, hang]);
  clearTimeout(timer);
  if (result === "hang") {
    receiver.stop();
    assert.fail(`receiver did not finish within ${limitMs} ms`);
  }
  return { ...result, elapsedMs: performance.now() - started };
}

async function tempArchive(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "pgwal-faults-"));
  directories.push(dir);
  return dir;
}

/**
 * Scripted connection, a receiver on a fresh archive, and what came of it. The server is closed
 * here (not in afterEach), so scenarios may run concurrently; its records stay readable.
 */
async function scenario(
  script: readonly ScriptStep[],
  options: Partial<ReceiverOptions> & { connectTimeout?: string; sslmode?: string } = {},
  serverOptions: Partial<FakeServerOptions> & { limitMs?: number } = {},
): Promise<Outcome & { server: FakeServer; dir: string; clientLeft: boolean }> {
  const { limitMs, ...rest } = serverOptions;
  const server = await FakeServer.start({ scripts: [script], ...rest });
  try {
    const dir = await tempArchive();
    const outcome = await outcomeOf(receiverFor(server, dir, options), limitMs);
    // Did the receiver drop the connection by itself (before the server closes everything)?
    const clientLeft = (await server.connections[0]?.waitGone(1000)) ?? true;
    return { ...outcome, server, dir, clientLeft };
  } finally {
    await server.close();
  }
}

function expectError<T extends Error>(
  outcome: Outcome,
  type: abstract new (...args: never[]) => T,
  message: RegExp,
): T {
  assert.equal(outcome.exit, undefined, `expected an error, got exit ${JSON.stringify(outcome.exit)}`);
  assert.ok(
    outcome.error instanceof type,
    `expected ${type.name}, got ${outcome.error instanceof Error ? `${outcome.error.name}: ${outcome.error.message}` : String(outcome.error)}`,
  );
  assert.match(outcome.error.message, message);
  return outcome.error;
}

/** LSN of the first byte of a segment file, from its name (timeline, log, seg). */
function segmentStartFromName(name: string): Lsn {
  const perLogId = 0x1_0000_0000n / BigInt(SEGMENT);
  const log = BigInt(`0x${name.slice(8, 16)}`);
  const seg = BigInt(`0x${name.slice(16, 24)}`);
  return (log * perLogId + seg) * BigInt(SEGMENT);
}

interface ArchiveFile {
  size: number;
  /** Bytes from the start that are the WAL the server sent there; everything after them is zero. */
  validBytes: number;
}

/**
 * Lists the archive and checks every segment file against the WAL the fake server sends at its
 * positions: a complete file must be that WAL exactly; a .partial must be that WAL up to some
 * point and zeros after it. Returns name → size and valid prefix, for precise assertions.
 */
function inspectArchive(dir: string): Record<string, ArchiveFile> {
  const listing: Record<string, ArchiveFile> = {};
  for (const name of readdirSync(dir).sort()) {
    const content = readFileSync(join(dir, name));
    if (!/^[0-9A-F]{24}(\.partial)?$/.test(name)) {
      listing[name] = { size: content.length, validBytes: content.length };
      continue;
    }
    const expected = walBytes(segmentStartFromName(name), content.length);
    let valid = 0;
    while (valid < content.length && content[valid] === expected[valid]) valid++;
    if (name.endsWith(".partial")) {
      const tail = content.subarray(valid);
      assert.ok(
        tail.every((b) => b === 0),
        `${name}: bytes after the first ${valid} valid ones are not zero padding`,
      );
    } else {
      assert.equal(
        valid,
        content.length,
        `${name} is complete but differs from the server's WAL at byte ${valid}`,
      );
    }
    listing[name] = { size: content.length, validBytes: valid };
  }
  return listing;
}

/** The segment streaming starts in, and the next two. */
const SEG_A = walFileName(1, START / BigInt(SEGMENT), SEGMENT);
const SEG_B = walFileName(1, START / BigInt(SEGMENT) + 1n, SEGMENT);
const SEG_C = walFileName(1, START / BigInt(SEGMENT) + 2n, SEGMENT);

function assertNoScriptProblems(server: FakeServer): void {
  assert.deepEqual(server.problems, []);
}

// --- Startup and authentication ---

describe("connection startup faults", () => {
  const cases: {
    name: string;
    script: ScriptStep[];
    type: abstract new (...args: never[]) => Error;
    message: RegExp;
  }[] = [
    {
      name: "an HTTP answer instead of a message (length field from ASCII is far too big)",
      script: [send(Buffer.from("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", "latin1"))],
      type: ProtocolError,
      message: /^invalid length 1414811695 in .*message header \(limit 1073807360\)$/,
    },
    {
      name: "garbage that frames as a message of an unknown type",
      script: [send(Buffer.from([0x01, 0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef]))],
      type: ProtocolError,
      message: /^expected authentication request from server, but received unknown message type 0x01$/,
    },
    {
      name: "a length field below 4",
      script: [send(Buffer.from([0x52, 0, 0, 0, 3]))],
      type: ProtocolError,
      message: /^invalid length 3 in Authentication \('R'\) message header \(less than 4\)$/,
    },
    {
      name: "a negative length field",
      script: [send(Buffer.from([0x52, 0xff, 0xff, 0xff, 0xff]))],
      type: ProtocolError,
      message: /^invalid length -1 in Authentication \('R'\) message header \(less than 4\)$/,
    },
    {
      name: "a length field far above the limit, header split across writes",
      script: [send(Buffer.from([0x44, 0x7f, 0xff, 0xff, 0xff]), { splitAt: [1, 3] })],
      type: ProtocolError,
      message: /^invalid length 2147483647 in DataRow \('D'\) message header \(limit 1073807360\)$/,
    },
    {
      name: "a message truncated, then the connection closed",
      script: [
        send(Buffer.concat([authenticationOk(), parameterStatus("server_version", "16.4").subarray(0, 9)])),
        close,
      ],
      type: ConnectionError,
      message: /^connection to server at "127\.0\.0\.1", port \d+: server closed the connection unexpectedly/,
    },
    {
      name: "a connection reset in the middle of the startup response",
      script: [send(authenticationOk()), reset],
      type: ConnectionError,
      message:
        /^connection to server at "127\.0\.0\.1", port \d+: (read ECONNRESET|server closed the connection unexpectedly)/,
    },
    {
      name: "an unknown message type after AuthenticationOk",
      script: [send(Buffer.concat([authenticationOk(), backendMessage("Y", Buffer.from("??"))]))],
      type: ProtocolError,
      message: /^unexpected message unknown message type .*Y.* during startup$/,
    },
    {
      name: "a query result (DataRow) during startup",
      script: [send(Buffer.concat([authenticationOk(), resultSet(["a"], [["1"]])]))],
      type: ProtocolError,
      message: /^unexpected message RowDescription \('T'\) during startup$/,
    },
    {
      name: "AuthenticationGSS",
      script: [send(authenticationRequest(7))],
      type: AuthenticationError,
      message:
        /^connection to server at "127\.0\.0\.1", port \d+ failed: authentication method "GSSAPI" is not supported by pgwal$/,
    },
    {
      name: "AuthenticationSSPI",
      script: [send(authenticationRequest(9))],
      type: AuthenticationError,
      message: /failed: authentication method "SSPI" is not supported by pgwal$/,
    },
    {
      name: "an authentication request code that does not exist",
      script: [send(authenticationRequest(99))],
      type: AuthenticationError,
      message: /failed: authentication method "unknown \(code 99\)" is not supported by pgwal$/,
    },
    {
      name: "AuthenticationSASL offering only an unknown mechanism",
      script: [send(authenticationSasl(["SCRAM-SHA-1024-EXPERIMENTAL"]))],
      type: AuthenticationError,
      message: /failed: none of the server's SASL authentication mechanisms are supported$/,
    },
    {
      name: "SASLContinue without SASL having started",
      script: [send(authenticationRequest(11, Buffer.from("r=abc,s=xyz,i=4096")))],
      type: ProtocolError,
      message: /^server sent SASLContinue before SASL was started$/,
    },
    {
      name: "an ErrorResponse without the SQLSTATE field",
      script: [send(errorResponse({ severity: "FATAL", message: "sorry, too many clients already" }))],
      type: ProtocolError,
      message: /^malformed ErrorResponse\/NoticeResponse message: no SQLSTATE field \(C\)$/,
    },
  ];

  for (const c of cases) {
    test(c.name, async () => {
      const outcome = await scenario(c.script);
      expectError(outcome, c.type, c.message);
      assert.deepEqual(inspectArchive(outcome.dir), {}, "nothing may be written before streaming");
      assertNoScriptProblems(outcome.server);
      assert.ok(outcome.clientLeft, "the receiver must drop the connection");
    });
  }

  test("a complete ErrorResponse at startup is a ServerError with libpq's prefix (control case)", async () => {
    const outcome = await scenario([
      send(errorResponse({ severity: "FATAL", code: "53300", message: "sorry, too many clients already" })),
    ]);
    const error = expectError(
      outcome,
      ServerError,
      /^connection to server at "127\.0\.0\.1", port \d+ failed: FATAL: {2}sorry, too many clients already$/,
    );
    assert.equal(error.code, "53300");
    assert.equal(error.retryable, true);
  });

  test("AuthenticationGSS is not retried even without --no-loop (the method cannot start working by itself)", async () => {
    const outcome = await scenario([send(authenticationRequest(7))], { noLoop: false });
    const error = expectError(outcome, AuthenticationError, /GSSAPI/);
    assert.equal(error.retryable, false);
    // A second connection would have been unscripted, and recorded as a problem.
    assert.equal(outcome.server.connections.length, 1);
    assertNoScriptProblems(outcome.server);
  });

  test("without --no-loop, garbage on one connection is followed by a reconnect that streams normally", async () => {
    let receiver: WalReceiver | undefined;
    const server = await fakeServer({
      scripts: [
        [send(Buffer.from([0, 0, 0, 0, 4, 0xff])), close],
        [
          ...replicationHandshake(IDENTITY),
          send(xlogStream(START, 3000)),
          send(keepalive(START + 3000n, 0n, true)),
          waitUntil("3000 bytes written", (c) => c.statusUpdates.some((u) => u.write === START + 3000n)),
          run(() => receiver!.stop()),
          expectMessage("c"),
          send(streamStoppedResponse()),
        ],
      ],
    });
    const dir = await tempArchive();
    receiver = receiverFor(server, dir, { noLoop: false });
    const disconnects: string[] = [];
    receiver.on("disconnected", (e) => disconnects.push(`${e.error.name}: ${e.error.message}`));
    const outcome = await outcomeOf(receiver);
    assert.deepEqual(outcome.exit, { reason: "stopped" });
    assert.equal(disconnects.length, 1);
    assert.match(
      disconnects[0]!,
      /^ProtocolError: expected authentication request from server, but received unknown message type 0x00$/,
    );
    assert.equal(server.connections.length, 2);
    assertNoScriptProblems(server);
    assert.deepEqual(inspectArchive(dir), { [`${SEG_A}.partial`]: { size: SEGMENT, validBytes: 3000 } });
  });
});

// --- connect_timeout ---

// The three waits run side by side: each takes its full connect_timeout.
describe("a server that accepts and then says nothing", { concurrency: true }, () => {
  test("connect_timeout=2 fails the startup after about 2 s with libpq's message", async () => {
    const outcome = await scenario([stall], { connectTimeout: "2" });
    expectError(
      outcome,
      ConnectionError,
      /^connection to server at "127\.0\.0\.1", port \d+ failed: timeout expired$/,
    );
    assert.ok(
      outcome.elapsedMs >= 1900 && outcome.elapsedMs < 3500,
      `failed after ${outcome.elapsedMs.toFixed(0)} ms`,
    );
    assert.equal(outcome.server.connections.length, 1);
    assert.equal(outcome.server.connections[0]!.startupParameters.get("replication"), "true");
  });

  test("connect_timeout=2 also covers a silent server after AuthenticationOk", async () => {
    const outcome = await scenario([send(authenticationOk()), stall], { connectTimeout: "2" });
    expectError(outcome, ConnectionError, /failed: timeout expired$/);
    assert.ok(outcome.elapsedMs >= 1900 && outcome.elapsedMs < 3500, `${outcome.elapsedMs} ms`);
  });

  test("connect_timeout=2 covers a server that never answers SSLRequest (sslmode=prefer)", async () => {
    const outcome = await scenario(
      [stall],
      { connectTimeout: "2", sslmode: "prefer" },
      { sslResponse: "silent", limitMs: 4000 },
    );
    expectError(outcome, ConnectionError, /failed: timeout expired$/);
    assert.ok(outcome.elapsedMs >= 1900 && outcome.elapsedMs < 3500, `${outcome.elapsedMs} ms`);
    assert.equal(outcome.server.connections[0]!.sslRequested, true);
  });
});

// --- Streaming ---

/** Handshake, then `steps`, for a receiver that must end with an error. */
function streaming(...steps: ScriptStep[]): ScriptStep[] {
  return [...replicationHandshake(IDENTITY), ...steps];
}

/**
 * WAL from START, then a keepalive asking for a reply, then a wait for the reply that shows it all
 * written: the fault that follows cannot overtake the data (in one batch, or by a failed socket).
 */
function walWritten(length: number): ScriptStep[] {
  const end = START + BigInt(length);
  return [
    send(xlogStream(START, length)),
    send(keepalive(end, 0n, true)),
    waitUntil(`the receiver reports ${formatLsn(end)} written`, (c) =>
      c.statusUpdates.some((u) => u.write === end),
    ),
  ];
}

describe("streaming faults", () => {
  test("valid WAL cut at odd points streams normally (control case)", async () => {
    let receiver: WalReceiver | undefined;
    const wal = xlogStream(START, SEGMENT + 1000, { chunk: 100_000 });
    const server = await fakeServer({
      scripts: [
        [
          ...replicationHandshake(IDENTITY).map((step) =>
            step.kind === "send" ? send(step.bytes, { splitAt: [1, 2, 6, 9, 40, 41] }) : step,
          ),
          send(wal, { splitAt: [1, 5, 6, 30, 100_030, 100_031, 555_555, wal.length - 3], pauseMs: 2 }),
          waitUntil(
            "everything is written",
            (c) =>
              c.statusUpdates.length > 0 && receiver!.positions.written === START + BigInt(SEGMENT + 1000),
          ),
          run(() => receiver!.stop()),
          expectMessage("c"),
          send(streamStoppedResponse()),
        ],
      ],
    });
    const dir = await tempArchive();
    receiver = receiverFor(server, dir, { statusIntervalSeconds: 0 });
    const outcome = await outcomeOf(receiver);
    assert.deepEqual(outcome.exit, { reason: "stopped" });
    assert.deepEqual(inspectArchive(dir), {
      [SEG_A]: { size: SEGMENT, validBytes: SEGMENT },
      [`${SEG_B}.partial`]: { size: SEGMENT, validBytes: 1000 },
    });
    assertNoScriptProblems(server);
    const queries = server.connections[0]!.queries;
    assert.deepEqual(queries, [
      "SHOW data_directory_mode",
      "IDENTIFY_SYSTEM",
      "SHOW wal_segment_size",
      "START_REPLICATION PHYSICAL 0/3000000 TIMELINE 1",
    ]);
  });

  test("XLogData that skips ahead (a gap) is refused, naming both positions", async () => {
    const valid = SEGMENT + 100;
    const after = START + BigInt(valid);
    const outcome = await scenario(
      streaming(
        ...walWritten(valid),
        send(xlogData(after + 8n, after + 1000n, 0n, walBytes(after + 8n, 500))),
      ),
    );
    expectError(
      outcome,
      ProtocolError,
      new RegExp(
        `^got WAL data offset ${formatLsn(after + 8n)}, expected ${formatLsn(after)} \\(segment offset 108\\)$`,
      ),
    );
    const archive = inspectArchive(outcome.dir);
    assert.deepEqual(Object.keys(archive), [SEG_A, `${SEG_B}.partial`]);
    assert.equal(archive[SEG_A]!.validBytes, SEGMENT);
    assert.equal(archive[`${SEG_B}.partial`]!.validBytes, 100, "no byte of the refused message was written");
    assertNoScriptProblems(outcome.server);
  });

  test("XLogData that goes back (an overlap) is refused, naming both positions", async () => {
    const valid = 5000;
    const after = START + BigInt(valid);
    const outcome = await scenario(
      streaming(
        ...walWritten(valid),
        send(xlogData(after - 50n, after + 1000n, 0n, walBytes(after - 50n, SEGMENT))),
      ),
    );
    expectError(
      outcome,
      ProtocolError,
      new RegExp(
        `^got WAL data offset ${formatLsn(after - 50n)}, expected ${formatLsn(after)} \\(segment offset 4950\\)$`,
      ),
    );
    // The overlapping message would have completed the first segment: it must not exist.
    const archive = inspectArchive(outcome.dir);
    assert.deepEqual(Object.keys(archive), [`${SEG_A}.partial`]);
    assert.equal(archive[`${SEG_A}.partial`]!.validBytes, valid);
  });

  test("XLogData whose first message starts inside the segment is refused (no file open at that offset)", async () => {
    const outcome = await scenario(
      streaming(send(xlogData(START + 16n, START + 100n, 0n, walBytes(START + 16n, 84)))),
    );
    expectError(
      outcome,
      ProtocolError,
      /^got WAL data offset 0\/3000010, expected 0\/3000000 \(segment offset 16\)$/,
    );
    assert.deepEqual(inspectArchive(outcome.dir), {});
  });

  test("an XLogData header shorter than 25 bytes is a ProtocolError", async () => {
    const outcome = await scenario(
      streaming(...walWritten(3000), send(copyData(Buffer.concat([Buffer.from("w"), Buffer.alloc(12)])))),
    );
    expectError(
      outcome,
      ProtocolError,
      /^malformed XLogData message: truncated at end of WAL \(needs 8 bytes at offset 9, body has 13\)$/,
    );
    const archive = inspectArchive(outcome.dir);
    assert.deepEqual(Object.keys(archive), [`${SEG_A}.partial`]);
    assert.equal(archive[`${SEG_A}.partial`]!.validBytes, 3000);
  });

  test("an empty CopyData payload is a ProtocolError", async () => {
    const outcome = await scenario(streaming(send(copyData(Buffer.alloc(0)))));
    expectError(outcome, ProtocolError, /^unrecognized streaming header/);
  });

  test("an unknown CopyData type byte is a ProtocolError naming it", async () => {
    const outcome = await scenario(
      streaming(send(xlogStream(START, 2000)), send(copyData(Buffer.from("zhello")))),
    );
    expectError(outcome, ProtocolError, /^unrecognized streaming header: "z"$/);
  });

  test("a keepalive of the wrong length is a ProtocolError", async () => {
    const outcome = await scenario(
      streaming(send(copyData(Buffer.concat([keepalive(START, 0n).subarray(5), Buffer.from([0])])))),
    );
    expectError(outcome, ProtocolError, /^malformed primary keepalive message: 19 bytes, expected 18$/);
  });

  test("garbage framing in the middle of the stream (length over the limit) is a ProtocolError", async () => {
    const outcome = await scenario(
      streaming(...walWritten(7000), send(Buffer.from([0x64, 0x7f, 0, 0, 0, 1, 2, 3]))),
    );
    expectError(outcome, ProtocolError, /^invalid length 2130706432 in CopyData \('d'\) message header/);
    const archive = inspectArchive(outcome.dir);
    assert.equal(archive[`${SEG_A}.partial`]!.validBytes, 7000);
  });

  test("an XLogData message truncated by a closed connection leaves only whole messages' bytes", async () => {
    const whole = xlogStream(START, 4000, { chunk: 1000 });
    const cut = xlogData(START + 4000n, START + 8000n, 0n, walBytes(START + 4000n, 4000)).subarray(0, 2000);
    const outcome = await scenario(
      streaming(
        send(whole),
        send(keepalive(START + 4000n, 0n, true)),
        waitUntil("4000 bytes written", (c) => c.statusUpdates.some((u) => u.write === START + 4000n)),
        send(cut),
        close,
      ),
    );
    expectError(outcome, ConnectionError, /server closed the connection unexpectedly/);
    const archive = inspectArchive(outcome.dir);
    assert.deepEqual(Object.keys(archive), [`${SEG_A}.partial`]);
    assert.equal(archive[`${SEG_A}.partial`]!.validBytes, 4000);
  });

  test("a connection reset mid-segment is a retryable ConnectionError and the segment stays .partial", async () => {
    const outcome = await scenario(streaming(...walWritten(SEGMENT - 10), reset));
    const error = expectError(
      outcome,
      ConnectionError,
      /ECONNRESET|server closed the connection unexpectedly/,
    );
    assert.equal(error.retryable, true);
    assert.deepEqual(inspectArchive(outcome.dir), {
      [`${SEG_A}.partial`]: { size: SEGMENT, validBytes: SEGMENT - 10 },
    });
  });

  test("CopyDone before any data, then a result set with two rows, is a ProtocolError", async () => {
    const outcome = await scenario(
      streaming(
        send(
          Buffer.concat([
            copyDone(),
            resultSet(
              ["next_tli", "next_tli_startpos"],
              [
                ["2", "0/3000000"],
                ["3", "0/3000000"],
              ],
            ),
            commandComplete("START_STREAMING"),
            readyForQuery(),
          ]),
        ),
      ),
    );
    expectError(
      outcome,
      ProtocolError,
      /^unexpected result set after end-of-timeline: got 2 rows and 2 fields, expected 1 rows and 2 fields$/,
    );
    assert.deepEqual(inspectArchive(outcome.dir), {});
    assert.ok(outcome.clientLeft);
    const sent = outcome.server.connections[0]!.messages.map((m) => m.type);
    assert.ok(sent.includes("c"), "the receiver answers the server's CopyDone with its own");
  });

  test("CopyDone mid-segment, then a next timeline that is not a number, is a ProtocolError; the data stays .partial", async () => {
    const outcome = await scenario(
      streaming(
        send(xlogStream(START, 10_000)),
        send(
          Buffer.concat([
            copyDone(),
            resultSet(["next_tli", "next_tli_startpos"], [["two", "0/3002710"]]),
            commandComplete("START_STREAMING"),
            readyForQuery(),
          ]),
        ),
      ),
    );
    expectError(outcome, ProtocolError, /^could not parse next timeline "two"$/);
    // The server ended the copy: what was received is written out and kept as .partial.
    assert.deepEqual(inspectArchive(outcome.dir), {
      [`${SEG_A}.partial`]: { size: SEGMENT, validBytes: 10_000 },
    });
  });

  test("CopyDone mid-segment, then a one-column row, is a ProtocolError", async () => {
    const outcome = await scenario(
      streaming(
        send(xlogStream(START, 500)),
        send(
          Buffer.concat([
            copyDone(),
            resultSet(["next_tli"], [["2"]]),
            commandComplete("START_STREAMING"),
            readyForQuery(),
          ]),
        ),
      ),
    );
    expectError(outcome, ProtocolError, /got 1 rows and 1 fields, expected 1 rows and 2 fields$/);
  });

  test("CopyDone and no next timeline at all ends the run as a terminated stream", async () => {
    const outcome = await scenario(streaming(send(xlogStream(START, 500)), send(streamStoppedResponse())));
    expectError(outcome, ProtocolError, /^replication stream was terminated before stop point$/);
    assert.deepEqual(inspectArchive(outcome.dir), {
      [`${SEG_A}.partial`]: { size: SEGMENT, validBytes: 500 },
    });
  });

  test("a next timeline lower than the current one is refused", async () => {
    const identity = { ...IDENTITY, timeline: 2 };
    const outcome = await scenario([
      ...replicationHandshake(identity),
      send(xlogStream(START, 2000)),
      send(endOfTimelineResponse(1, START + 2000n)),
    ]);
    expectError(outcome, ProtocolError, /^server reported unexpected next timeline 1, following timeline 2$/);
    assertNoScriptProblems(outcome.server);
    const files = readdirSync(outcome.dir).sort();
    assert.deepEqual(files, [
      "00000002.history",
      `${walFileName(2, START / BigInt(SEGMENT), SEGMENT)}.partial`,
    ]);
    assert.equal(
      readFileSync(join(outcome.dir, "00000002.history"), "utf8"),
      "1\t0/1000000\tno recovery target specified\n",
    );
  });

  test("the same timeline as next timeline is refused", async () => {
    const outcome = await scenario(streaming(send(endOfTimelineResponse(1, START))));
    expectError(outcome, ProtocolError, /^server reported unexpected next timeline 1, following timeline 1$/);
  });

  test("a next timeline starting after where the stream ended is refused", async () => {
    const outcome = await scenario(
      streaming(send(xlogStream(START, 2000)), send(endOfTimelineResponse(2, START + 4000n))),
    );
    expectError(
      outcome,
      ProtocolError,
      /^server stopped streaming timeline 1 at 0\/30007D0, but reported next timeline 2 to begin at 0\/3000FA0$/,
    );
  });
});

// --- Status updates ---

describe("standby status updates", () => {
  test("a keepalive asking for a reply gets one at once: write = received, flush = 0 without a slot", async () => {
    let receiver: WalReceiver | undefined;
    let askedAt = 0;
    let quietUpdates = -1;
    const received = START + 5000n;
    const server = await fakeServer({
      scripts: [
        [
          ...replicationHandshake(IDENTITY),
          waitUntil("the first status update", (c) => c.statusUpdates.length === 1),
          send(xlogStream(START, 5000)),
          // No reply asked: no update may follow (periodic updates are off).
          send(keepalive(received, 0n, false)),
          run(async (c) => {
            await new Promise((r) => setTimeout(r, 300));
            quietUpdates = c.statusUpdates.length;
            askedAt = performance.now();
          }),
          send(keepalive(received, 0n, true)),
          waitUntil("the reply", (c) => c.statusUpdates.some((u) => u.at > askedAt), 3000),
          run(() => receiver!.stop()),
          expectMessage("c"),
          send(streamStoppedResponse()),
        ],
      ],
    });
    const dir = await tempArchive();
    receiver = receiverFor(server, dir, { statusIntervalSeconds: 0 });
    const outcome = await outcomeOf(receiver);
    assert.deepEqual(outcome.exit, { reason: "stopped" });
    assertNoScriptProblems(server);
    const updates = server.connections[0]!.statusUpdates;
    assert.equal(quietUpdates, 1, "a keepalive without reply requested must not trigger an update");
    const first = updates[0]!;
    assert.equal(first.write, START);
    assert.equal(first.flush, 0n);
    const reply = updates.find((u) => u.at > askedAt)!;
    assert.ok(reply.at - askedAt < 1000, `reply after ${(reply.at - askedAt).toFixed(0)} ms`);
    assert.equal(reply.write, received);
    assert.equal(reply.flush, 0n);
    assert.equal(reply.apply, 0n);
    assert.equal(reply.replyRequested, false);
    // Client time is "now" in microseconds since 2000-01-01.
    const nowUs = BigInt(Date.now() - 946_684_800_000) * 1000n;
    assert.ok(
      nowUs - reply.clientTime >= 0n && nowUs - reply.clientTime < 10_000_000n,
      `clientTime ${reply.clientTime}`,
    );
    // Stopping sends a last update; without a slot flush is still never reported.
    assert.ok(updates.every((u) => u.flush === 0n));
  });

  test("with a slot, the reported flush never passes what was written and fsynced", async () => {
    let receiver: WalReceiver | undefined;
    const dir = await tempArchive();
    const violations: string[] = [];
    let walSent: Lsn = START;
    const identity = { ...IDENTITY, serverVersion: "16.4" };

    /** At the instant an update arrives, every byte up to its flush must be on disk and fsynced. */
    const checkUpdate = (status: RecordedStatus): void => {
      const at = `update write=${formatLsn(status.write)} flush=${formatLsn(status.flush)}`;
      if (status.flush > status.write) violations.push(`${at}: flush > write`);
      if (status.flush > walSent) violations.push(`${at}: flush beyond the WAL sent (${formatLsn(walSent)})`);
      const fsynced = receiver!.positions.flushed;
      if (status.flush > fsynced)
        violations.push(`${at}: flush beyond what was fsynced (${formatLsn(fsynced)})`);
      for (let seg = START; seg < status.flush; seg += BigInt(SEGMENT)) {
        const name = walFileName(1, seg / BigInt(SEGMENT), SEGMENT);
        const need = Number(status.flush - seg < BigInt(SEGMENT) ? status.flush - seg : BigInt(SEGMENT));
        let content: Buffer;
        try {
          content = readFileSync(join(dir, name));
        } catch {
          content = readFileSync(join(dir, `${name}.partial`));
        }
        if (!content.subarray(0, need).equals(walBytes(seg, need))) {
          violations.push(`${at}: ${name} does not hold the WAL up to the flush position`);
        }
      }
    };

    const total = 2 * SEGMENT + 300_000;
    const chunk = 64 * 1024;
    const streamSteps: ScriptStep[] = [];
    for (let offset = 0; offset < total; offset += chunk) {
      const at = START + BigInt(offset);
      const length = Math.min(chunk, total - offset);
      streamSteps.push(
        run(() => {
          walSent = at + BigInt(length);
        }),
        send(xlogData(at, at + BigInt(length), 0n, walBytes(at, length))),
      );
      if ((offset / chunk) % 4 === 3)
        streamSteps.push(send(keepalive(at + BigInt(length), 0n, true)), pause(15));
    }
    const end = START + BigInt(total);
    const server = await fakeServer({
      onStatusUpdate: (status) => checkUpdate(status),
      scripts: [
        [
          ...replicationHandshake(identity, { withSlot: true }),
          ...streamSteps,
          send(keepalive(end, 0n, true)),
          waitUntil("flush reaches the end of the WAL sent", (c) =>
            c.statusUpdates.some((u) => u.flush === end),
          ),
          run(() => receiver!.stop()),
          expectMessage("c"),
          send(streamStoppedResponse()),
        ],
      ],
    });
    receiver = receiverFor(server, dir, { slot: "s1", statusIntervalSeconds: 1 });
    const outcome = await outcomeOf(receiver, 15_000);
    assert.deepEqual(outcome.exit, { reason: "stopped" });
    assertNoScriptProblems(server);
    assert.deepEqual(violations, []);
    const conn = server.connections[0]!;
    assert.deepEqual(conn.queries.slice(3), [
      'READ_REPLICATION_SLOT "s1"',
      'START_REPLICATION SLOT "s1" PHYSICAL 0/3000000 TIMELINE 1',
    ]);
    const flushes = conn.statusUpdates.map((u) => u.flush);
    // Ten keepalives ask for a reply, but the receiver answers once per batch of messages it read:
    // under load two of them can share a batch (seen: 9 updates). Several updates are what makes
    // the check above mean something; the exact count is up to timing.
    assert.ok(flushes.length >= 5, `only ${flushes.length} updates`);
    assert.ok(new Set(flushes).size >= 3, `flush took only the values ${flushes.map(formatLsn).join(" ")}`);
    // Flush is reported (slot) and never goes backwards.
    assert.ok(
      flushes.some((f) => f > START && f < end),
      "flush advanced before the end",
    );
    for (let i = 1; i < flushes.length; i++)
      assert.ok(flushes[i]! >= flushes[i - 1]!, `flush went back at update ${i}`);
    assert.deepEqual(inspectArchive(dir), {
      [SEG_A]: { size: SEGMENT, validBytes: SEGMENT },
      [SEG_B]: { size: SEGMENT, validBytes: SEGMENT },
      [`${SEG_C}.partial`]: { size: SEGMENT, validBytes: 300_000 },
    });
  });
});

// --- Hostile values (issue 12): sizes before login, file names and timelines from the server ---

/** A message header announcing `length` (the length field) of type `type`, and nothing after it. */
function headerOnly(type: string, length: number): Buffer {
  const header = Buffer.alloc(5);
  header.write(type, 0, "latin1");
  header.writeInt32BE(length, 1);
  return header;
}

describe("a hostile server before login", () => {
  const GIB = 1024 * 1024 * 1024;
  for (const type of ["R", "E", "D"]) {
    test(`a ~1 GiB '${type}' message announced before authentication is refused at its header, nothing allocated`, async () => {
      let grownBy = 0;
      const before = process.memoryUsage().arrayBuffers;
      const outcome = await scenario(
        [
          send(headerOnly(type, GIB - 1)),
          // While the client would be waiting for the body, see what it holds.
          pause(300),
          run(() => {
            grownBy = process.memoryUsage().arrayBuffers - before;
          }),
          stall,
        ],
        { connectTimeout: "10" },
      );
      expectError(
        outcome,
        ProtocolError,
        type === "D"
          ? /^expected authentication request from server, but received DataRow \('D'\)$/
          : /message header \(limit (2000|30000) before authentication\)$/,
      );
      assert.ok(outcome.elapsedMs < 2000, `refused after ${outcome.elapsedMs.toFixed(0)} ms`);
      assert.ok(grownBy < 64 * 1024 * 1024, `array buffers grew by ${grownBy} bytes`);
      assert.ok(outcome.clientLeft, "the client must drop the connection");
    });
  }

  test("after AuthenticationOk, a short-only message type over libpq's 30000 bytes is refused", async () => {
    const outcome = await scenario([
      send(Buffer.concat([authenticationOk(), parameterStatus("huge", "x".repeat(40_000))])),
    ]);
    expectError(
      outcome,
      ProtocolError,
      /^invalid length 40010 in ParameterStatus \('S'\) message header \(limit 30000 for this message type\)$/,
    );
  });
});

describe("file names and timelines the server makes up", () => {
  test("a TIMELINE_HISTORY file name that is not the computed one stops before anything is written or hooked", async () => {
    for (const name of [
      "00000002.history;touch PWNED;#",
      "00000003.history",
      "../00000002.history",
      "00000002.history\u001b[2J\n",
    ]) {
      const server = await fakeServer({
        scripts: [replicationHandshake({ ...IDENTITY, timeline: 2, historyFileName: name })],
      });
      const dir = await tempArchive();
      const receiver = receiverFor(server, dir);
      const histories: string[] = [];
      receiver.on("history", (e) => histories.push(e.path));
      const outcome = await outcomeOf(receiver);
      const escaped = name.replace("\u001b", "\\x1b").replace("\n", "\\n");
      const error = expectError(
        outcome,
        ProtocolError,
        /^server reported unexpected history file name for timeline 2: /,
      );
      assert.equal(error.message, `server reported unexpected history file name for timeline 2: ${escaped}`);
      assert.deepEqual(histories, [], "no history event for a name pgwal did not build");
      assert.deepEqual(readdirSync(dir), [], "nothing written");
      await server.close();
    }
  });

  const impossible = [
    { where: "IDENTIFY_SYSTEM", timeline: 0 },
    { where: "IDENTIFY_SYSTEM", timeline: 2 ** 32 },
  ];
  for (const c of impossible) {
    test(`timeline ${c.timeline} from ${c.where} is a ProtocolError, and a daemon reconnects after it`, async () => {
      let receiver: WalReceiver | undefined;
      const server = await fakeServer({
        scripts: [
          replicationHandshake({ ...IDENTITY, timeline: c.timeline }).slice(0, 3),
          [
            ...replicationHandshake(IDENTITY),
            send(xlogStream(START, 1000)),
            send(keepalive(START + 1000n, 0n, true)),
            waitUntil("1000 bytes written", (conn) =>
              conn.statusUpdates.some((u) => u.write === START + 1000n),
            ),
            run(() => receiver!.stop()),
            expectMessage("c"),
            send(streamStoppedResponse()),
          ],
        ],
      });
      const dir = await tempArchive();
      receiver = receiverFor(server, dir, { noLoop: false });
      const disconnects: string[] = [];
      receiver.on("disconnected", (e) => disconnects.push(`${e.error.name}: ${e.error.message}`));
      const outcome = await outcomeOf(receiver);
      assert.equal(outcome.error, undefined, String(outcome.error));
      assert.deepEqual(outcome.exit, { reason: "stopped" });
      assert.deepEqual(disconnects, [
        `ProtocolError: server reported invalid timeline ${c.timeline} in IDENTIFY_SYSTEM (expected 1 to 4294967295)`,
      ]);
    });
  }

  test("a next timeline of 2^32 after the end of a timeline is a ProtocolError", async () => {
    const outcome = await scenario(
      streaming(send(xlogStream(START, 2000)), send(endOfTimelineResponse(2 ** 32, START + 2000n))),
    );
    expectError(
      outcome,
      ProtocolError,
      /^server reported invalid next timeline 4294967296 in the end-of-streaming result \(expected 1 to 4294967295\)$/,
    );
  });

  test("a slot's restart timeline of 0 from READ_REPLICATION_SLOT is a ProtocolError", async () => {
    const outcome = await scenario(
      replicationHandshake(
        { ...IDENTITY, slotRow: readReplicationSlotResponse("physical", START, 0) },
        { withSlot: true },
      ).slice(0, 5),
      { slot: "s" },
    );
    expectError(
      outcome,
      ProtocolError,
      /^server reported invalid timeline 0 in READ_REPLICATION_SLOT \(expected 1 to 4294967295\)$/,
    );
  });

  test("control characters in a server's error message are escaped before they reach a message", async () => {
    const outcome = await scenario([
      send(errorResponse({ severity: "FATAL", code: "28000", message: "no\u001b[2J\nFAKE: line\u0007" })),
    ]);
    const error = expectError(outcome, ServerError, /no/);
    assert.match(error.message, /failed: FATAL: {2}no\\x1b\[2J\\nFAKE: line\\x07$/);
    assert.equal(hasControlCharacters(error.message), false);
  });
});

describe("SCRAM against a server that cuts corners", () => {
  async function connectWithPassword(server: FakeServer, connectTimeout?: string): Promise<Outcome> {
    const overrides: Record<string, string> = {
      host: "127.0.0.1",
      port: String(server.port),
      user: "x",
      password: "secret",
      sslmode: "disable",
    };
    if (connectTimeout !== undefined) overrides.connect_timeout = connectTimeout;
    const started = performance.now();
    const settings = resolveConnectionSettings({ overrides, forced: { replication: "true" }, env: {} });
    const result = await PgConnection.connect(settings).then(
      (conn) => {
        conn.destroy();
        return { exit: { reason: "stopped" } as ReceiverExit };
      },
      (error: unknown) => ({ error }),
    );
    return { ...result, elapsedMs: performance.now() - started };
  }

  test("AuthenticationOk before SASLFinal is refused: the server never proved it knows the password", async () => {
    const server = await fakeServer({
      scripts: [
        [send(authenticationSasl(["SCRAM-SHA-256"])), expectMessage("p"), send(startupResponse()), stall],
      ],
    });
    const outcome = await connectWithPassword(server);
    assert.ok(outcome.error instanceof AuthenticationError, String(outcome.error));
    assert.match(
      outcome.error.message,
      /^connection to server at "127\.0\.0\.1", port \d+ failed: server sent AuthenticationOk before the SCRAM exchange was complete$/,
    );
    assertNoScriptProblems(server);
  });

  test("a huge PBKDF2 iteration count does not block the event loop: connect_timeout still holds", async () => {
    let clientFirst = "";
    const server = await fakeServer({
      scripts: [
        [
          send(authenticationSasl(["SCRAM-SHA-256"])),
          run(async (conn) => {
            const message = await conn.take("p", 5000);
            // SASLInitialResponse: mechanism\0, Int32 length, then "n,,n=,r=<nonce>".
            const body = message!.body;
            const start = body.indexOf(0) + 5;
            clientFirst = body.subarray(start).toString("utf8");
            const nonce = /r=([^,]+)/.exec(clientFirst)![1]!;
            const serverFirst = `r=${nonce}server,s=${Buffer.from("salt").toString("base64")},i=10000000`;
            conn.socket.write(authenticationRequest(11, Buffer.from(serverFirst)));
          }),
          stall,
        ],
      ],
    });
    const outcome = await connectWithPassword(server, "2");
    assert.ok(outcome.error instanceof ConnectionError, String(outcome.error));
    assert.match(outcome.error.message, /failed: timeout expired$/);
    assert.ok(outcome.elapsedMs < 3500, `timed out after ${outcome.elapsedMs.toFixed(0)} ms`);
    assert.match(clientFirst, /^n,,n=,r=/);
  });
});

// --- Process-level guarantee (runs last: node:test runs top-level tests in order) ---

test("no fault above escaped as an uncaught exception or unhandled rejection", async () => {
  // Let late rejections (timers, socket events) surface first.
  await new Promise((resolve) => setTimeout(resolve, 200));
  process.off("unhandledRejection", onUnhandled);
  process.off("uncaughtException", onUncaught);
  assert.deepEqual(escaped, []);
});
