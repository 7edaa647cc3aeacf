import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { PassThrough, Writable } from "node:stream";
import { test } from "node:test";
import { buildConnectionSettings, isMissingPasswordError } from "../../src/cli/connect.js";
import { reportFatalError, usageErrorLines } from "../../src/cli/errors-to-exit.js";
import { chooseLogFormat, chooseLogLevel, createCliLogger } from "../../src/cli/logging.js";
import { programNameFromScript } from "../../src/cli/main.js";
import { readPassword } from "../../src/cli/password-prompt.js";
import { handleStopSignals, type SignalSource, type StopSignal } from "../../src/cli/signals.js";
import { AuthenticationError, ConnectionError, ServerError, UsageError } from "../../src/errors.js";

// --- password prompt -------------------------------------------------------------------------

function fakeTerminal() {
  const input = Object.assign(new PassThrough(), {
    rawModes: [] as boolean[],
    setRawMode(mode: boolean) {
      this.rawModes.push(mode);
    },
  });
  let written = "";
  return { input, write: (text: string) => (written += text), written: () => written };
}

test("password prompt: no echo, raw mode on then off, backspace and Ctrl-U edit", async () => {
  const terminal = fakeTerminal();
  const answer = readPassword(terminal, "Password: ");
  terminal.input.write("xx\u0015sec");
  terminal.input.write("\u007fret\r");
  assert.deepEqual(await answer, { kind: "password", password: "seret" });
  assert.equal(terminal.written(), "Password: \n");
  assert.deepEqual(terminal.input.rawModes, [true, false]);
});

test("password prompt: Ctrl-C cancels; end of input finishes with what was typed", async () => {
  const cancelled = fakeTerminal();
  const first = readPassword(cancelled);
  cancelled.input.write("abc\u0003def\r");
  assert.deepEqual(await first, { kind: "cancelled" });

  const ended = fakeTerminal();
  const second = readPassword(ended);
  ended.input.end("pw");
  assert.deepEqual(await second, { kind: "password", password: "pw" });
  assert.deepEqual(ended.input.rawModes, [true, false]);
});

test("password prompt: multi-byte characters survive, a pasted line ends at the newline", async () => {
  const terminal = fakeTerminal();
  const answer = readPassword(terminal);
  terminal.input.write(Buffer.from("pä🔑ss\nignored", "utf8"));
  assert.deepEqual(await answer, { kind: "password", password: "pä🔑ss" });
});

// --- signals ---------------------------------------------------------------------------------

test("first SIGINT/SIGTERM stops cleanly, the next one forces; handlers are removable", () => {
  const source = new EventEmitter() as EventEmitter & SignalSource;
  const seen: string[] = [];
  const remove = handleStopSignals(
    { stop: (s: StopSignal) => seen.push(`stop:${s}`), force: (s: StopSignal) => seen.push(`force:${s}`) },
    source,
  );
  source.emit("SIGTERM", "SIGTERM");
  source.emit("SIGINT", "SIGINT");
  assert.deepEqual(seen, ["stop:SIGTERM", "force:SIGINT"]);
  remove();
  assert.equal(source.listenerCount("SIGINT"), 0);
  assert.equal(source.listenerCount("SIGTERM"), 0);
});

// --- fatal errors ----------------------------------------------------------------------------

test("fatal errors: pg_receivewal's error line, server detail and hint, exit 1", () => {
  const server = new ServerError({
    severity: "ERROR",
    code: "58P01",
    message: "requested WAL segment 000000010000000000000003 has already been removed",
    hint: "use a slot",
    detail: "details",
  });
  const report = reportFatalError(server, { programName: "pg_receivewal", showStack: false });
  assert.deepEqual(report.lines, [
    "pg_receivewal: error: requested WAL segment 000000010000000000000003 has already been removed",
    "pg_receivewal: detail: details",
    "pg_receivewal: hint: use a slot",
  ]);
  assert.equal(report.exitCode, 1);
  assert.equal(report.fields.sqlstate, "58P01");

  const plain = reportFatalError(new ConnectionError("connection refused"), {
    programName: "pgwal",
    showStack: false,
  });
  assert.deepEqual(plain.lines, ["pgwal: error: connection refused"]);
  assert.equal(plain.fields.errorType, "ConnectionError");
});

test("fatal errors: stack only when asked; a bug says so; the message is printed as it is", () => {
  const bug = new TypeError("x is undefined");
  const quiet = reportFatalError(bug, { programName: "pgwal", showStack: false });
  assert.equal(quiet.lines[0], "pgwal: error: internal error: x is undefined");
  assert.ok(!quiet.lines.some((l) => l.includes("    at ")));
  const loud = reportFatalError(bug, { programName: "pgwal", showStack: true });
  assert.ok(loud.lines.some((l) => l.includes("    at ")));

  // Messages are not rewritten: secrets are kept out of them where they are made.
  const refused = new ConnectionError('connection to server at "h", port 5432 failed: Connection refused');
  assert.equal(
    reportFatalError(refused, { programName: "pgwal", showStack: false }).lines[0],
    'pgwal: error: connection to server at "h", port 5432 failed: Connection refused',
  );
});

test("usage error lines carry the hint only when pg_receivewal gives one", () => {
  assert.deepEqual(usageErrorLines("pg_receivewal", "pg_receivewal", "no target directory specified", true), [
    "pg_receivewal: error: no target directory specified",
    'pg_receivewal: hint: Try "pg_receivewal --help" for more information.',
  ]);
  assert.deepEqual(usageErrorLines("pgwal", "pgwal receive", "x", false), ["pgwal: error: x"]);
});

// --- logging ---------------------------------------------------------------------------------

test("log level from -v, format from the terminal, explicit options win", () => {
  assert.equal(chooseLogLevel(0), "warn");
  assert.equal(chooseLogLevel(1), "info");
  assert.equal(chooseLogLevel(2), "debug");
  assert.equal(chooseLogLevel(5), "debug");
  assert.equal(chooseLogLevel(2, "error"), "error");
  assert.equal(chooseLogFormat(undefined, true), "pretty");
  assert.equal(chooseLogFormat(undefined, false), "json");
  assert.equal(chooseLogFormat("json", true), "json");
});

function collect(): { stream: Writable; lines: () => string[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return { stream, lines: () => chunks.join("").split("\n").filter(Boolean) };
}

test("JSON logs: one object per line with the WAL fields, level filtering, passwords redacted", async () => {
  const out = collect();
  const logger = await createCliLogger({
    programName: "pg_receivewal",
    level: "info",
    format: "json",
    colorize: false,
    destination: out.stream,
  });
  logger.debug({}, "hidden");
  logger.info(
    { lsn: "0/3000000", timeline: 1, segment: "000000010000000000000002" },
    "finished segment at 0/3000000 (timeline 1)",
  );
  logger.warn({ connection: { user: "u", password: "hunter2" }, password: "hunter2" }, "with secrets");
  const lines = out.lines().map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(lines.length, 2);
  assert.equal(lines[0]!.msg, "finished segment at 0/3000000 (timeline 1)");
  assert.equal(lines[0]!.lsn, "0/3000000");
  assert.equal(lines[0]!.timeline, 1);
  assert.equal(lines[0]!.segment, "000000010000000000000002");
  assert.equal(lines[0]!.name, "pg_receivewal");
  assert.equal(lines[0]!.level, "info");
  assert.ok(!out.lines().join("").includes("hunter2"));
  assert.equal((lines[1]!.connection as Record<string, unknown>).password, "[redacted]");
});

test("pretty logs: readable single lines without colors when not a terminal", async () => {
  const out = collect();
  const logger = await createCliLogger({
    programName: "pgwal",
    level: "info",
    format: "pretty",
    colorize: false,
    destination: out.stream,
  });
  logger.info({ lsn: "0/3000000", timeline: 1 }, "finished segment at 0/3000000 (timeline 1)");
  const lines = out.lines();
  assert.equal(lines.length, 1);
  assert.match(lines[0]!, /INFO.*finished segment at 0\/3000000 \(timeline 1\)/);
  assert.match(lines[0]!, /"lsn":"0\/3000000"/);
  assert.ok(!lines[0]!.includes("\u001b["), "no ANSI color codes");
});

// --- connection settings ---------------------------------------------------------------------

const noFiles = { HOME: "/nonexistent-home" };

test("connection precedence: -h/-p/-U > -d > PG* environment; replication forced", () => {
  const env = {
    ...noFiles,
    PGHOST: "envhost",
    PGPORT: "1111",
    PGUSER: "envuser",
    PGDATABASE: "envdb",
    PGAPPNAME: "",
  };
  const fromEnv = buildConnectionSettings({}, "pg_receivewal", env);
  assert.deepEqual(fromEnv.targets, [{ host: "envhost", port: 1111 }]);
  assert.equal(fromEnv.user, "envuser");
  assert.equal(fromEnv.dbname, "replication");
  assert.equal(fromEnv.replication, "true");
  assert.equal(fromEnv.fallbackApplicationName, "pg_receivewal");

  const fromString = buildConnectionSettings(
    { dbname: "host=strhost port=2222 user=struser dbname=pooled replication=database" },
    "pgwal",
    env,
  );
  assert.deepEqual(fromString.targets, [{ host: "strhost", port: 2222 }]);
  assert.equal(fromString.user, "struser");
  assert.equal(fromString.dbname, "pooled");
  assert.equal(fromString.replication, "true");
  assert.equal(fromString.fallbackApplicationName, "pgwal");

  const fromOptions = buildConnectionSettings(
    { dbname: "postgresql://struser@strhost:2222", host: "127.0.0.1", port: "3333", username: "optuser" },
    "pgwal",
    env,
  );
  assert.deepEqual(fromOptions.targets, [{ host: "127.0.0.1", port: 3333 }]);
  assert.equal(fromOptions.user, "optuser");
  assert.equal(fromOptions.dbname, "replication");
  // application_name given by the user still wins over the fallback.
  assert.equal(
    buildConnectionSettings({ dbname: "application_name=mine host=h" }, "pgwal", noFiles).applicationName,
    "mine",
  );
});

test("connection settings: bad values are usage errors that never show the password", () => {
  assert.throws(() => buildConnectionSettings({ port: "x", host: "h" }, "pgwal", noFiles), UsageError);
  assert.throws(
    () => buildConnectionSettings({ dbname: "postgresql://u:hunter2@h:99999/" }, "pgwal", noFiles),
    (error: unknown) => error instanceof UsageError && !error.message.includes("hunter2"),
  );
});

test("a missing password is recognised, other refusals are not", () => {
  assert.equal(
    isMissingPasswordError(
      new AuthenticationError(
        'connection to server at "h", port 1 failed: fe_sendauth: no password supplied',
      ),
    ),
    true,
  );
  assert.equal(isMissingPasswordError(new AuthenticationError("SCRAM failed")), false);
  assert.equal(isMissingPasswordError(new ConnectionError("no password supplied")), false);
});

test("the program name comes from the script's own name, so a pg_receivewal symlink is the drop-in", () => {
  assert.equal(programNameFromScript("/usr/local/bin/pg_receivewal"), "pg_receivewal");
  assert.equal(programNameFromScript("pg_receivewal"), "pg_receivewal");
  assert.equal(programNameFromScript("/opt/pgwal/bin/pgwal"), "pgwal");
  assert.equal(programNameFromScript("/usr/bin/pg_receivewal-old"), "pgwal");
  assert.equal(programNameFromScript(undefined), "pgwal");
});
