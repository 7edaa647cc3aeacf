import assert from "node:assert/strict";
import { test } from "node:test";
import { ExitCode } from "../../src/cli/exit-codes.js";
import {
  envVariableName,
  type ParseOutcome,
  parseEndpos,
  parseReceiveArgs,
  type ReceiveArgs,
} from "../../src/cli/options.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";

const asReceivewal = { programName: "pg_receivewal" };

function run(argv: string[], env: NodeJS.ProcessEnv = {}): ReceiveArgs {
  const outcome = parseReceiveArgs(argv, { ...asReceivewal, env });
  assert.equal(outcome.kind, "run", outcome.kind === "usage-error" ? outcome.message : outcome.kind);
  return (outcome as Extract<ParseOutcome, { kind: "run" }>).args;
}

function usageError(argv: string[], env: NodeJS.ProcessEnv = {}) {
  const outcome = parseReceiveArgs(argv, { ...asReceivewal, env });
  assert.equal(outcome.kind, "usage-error", `${JSON.stringify(argv)} was accepted`);
  return outcome as Extract<ParseOutcome, { kind: "usage-error" }>;
}

test("defaults match pg_receivewal's", () => {
  const args = run(["-D", "/wal"]);
  assert.deepEqual(args, {
    directory: "/wal",
    ifNotExists: false,
    noLoop: false,
    noSync: false,
    statusIntervalSeconds: 10,
    synchronous: false,
    verbose: 0,
    compression: { method: "none" },
    createSlot: false,
    dropSlot: false,
    passwordPrompt: "auto",
    hookHoldsSlot: false,
    uploadConcurrency: 4,
    partialUploadIntervalSeconds: 10,
    uploadHoldsSlot: false,
  });
});

test("every option in its short and long spelling", () => {
  const long = run([
    "--directory=/wal",
    "--endpos=1/2A",
    "--if-not-exists",
    "--no-loop",
    "--status-interval",
    "5",
    "--slot=s1",
    "--synchronous",
    "--verbose",
    "--verbose",
    "--compress=gzip:4",
    "--dbname=host=db1",
    "--host=h",
    "--port=6543",
    "--username=u",
    "--no-password",
    "--log-format=json",
    "--log-level=trace",
  ]);
  assert.equal(long.directory, "/wal");
  assert.equal(long.endpos, 0x1_0000_002an);
  assert.equal(long.ifNotExists, true);
  assert.equal(long.noLoop, true);
  assert.equal(long.statusIntervalSeconds, 5);
  assert.equal(long.slot, "s1");
  assert.equal(long.synchronous, true);
  assert.equal(long.verbose, 2);
  assert.deepEqual(long.compression, { method: "gzip", level: 4 });
  assert.equal(long.dbname, "host=db1");
  assert.equal(long.host, "h");
  assert.equal(long.port, "6543");
  assert.equal(long.username, "u");
  assert.equal(long.passwordPrompt, "never");
  assert.equal(long.logFormat, "json");
  assert.equal(long.logLevel, "trace");

  const short = run([
    "-D",
    "/wal",
    "-E",
    "0/10",
    "-n",
    "-s",
    "0",
    "-S",
    "s1",
    "-v",
    "-Z",
    "lz4",
    "-d",
    "x=1",
    "-h",
    "h",
    "-p",
    "1",
    "-U",
    "u",
    "-W",
  ]);
  assert.equal(short.endpos, 0x10n);
  assert.equal(short.statusIntervalSeconds, 0);
  assert.equal(short.verbose, 1);
  assert.deepEqual(short.compression, { method: "lz4" });
  assert.equal(short.passwordPrompt, "always");
  assert.equal(short.noSync, false);
  assert.equal(run(["-D", "x", "--no-sync"]).noSync, true);
});

test("getopt forms: attached values, bundles, prefixes, a value that starts with '-', operands after --", () => {
  const attached = run(["-D/wal", "-hdb1", "-Ureplicator", "-p5433", "-Sslot", "-Z5", "-nvv"]);
  assert.equal(attached.directory, "/wal");
  assert.equal(attached.host, "db1");
  assert.equal(attached.username, "replicator");
  assert.equal(attached.port, "5433");
  assert.equal(attached.slot, "slot");
  assert.deepEqual(attached.compression, { method: "gzip", level: 5 });
  assert.equal(attached.noLoop, true);
  assert.equal(attached.verbose, 2);
  assert.equal(run(["--dir", "/w", "--sl=x"]).slot, "x");
  assert.equal(run(["-D", "/w", "-S", "-x"]).slot, "-x");
  assert.equal(run(["-nvD", "/w"]).directory, "/w");
  assert.equal(
    usageError(["-D", "/w", "--", "-n"]).message,
    'too many command-line arguments (first is "-n")',
  );
});

test("-Z: bare level is gzip, 0 is none, method:detail", () => {
  assert.deepEqual(run(["-D", "x", "-Z", "5"]).compression, { method: "gzip", level: 5 });
  assert.deepEqual(run(["-D", "x", "-Z", "0"]).compression, { method: "none" });
  assert.deepEqual(run(["-D", "x", "-Z", "gzip:level=9"]).compression, { method: "gzip", level: 9 });
  assert.deepEqual(run(["-D", "x", "--compress=lz4:3"]).compression, { method: "lz4", level: 3 });
});

test("validation messages, hints and exit codes are pg_receivewal's", () => {
  const table: { argv: string[]; message: string; hint: boolean }[] = [
    { argv: [], message: "no target directory specified", hint: true },
    { argv: ["-v"], message: "no target directory specified", hint: true },
    {
      argv: ["--create-slot", "--drop-slot", "-S", "s"],
      message: "cannot use --create-slot together with --drop-slot",
      hint: true,
    },
    {
      argv: ["--create-slot"],
      message: "--create-slot needs a slot to be specified using --slot",
      hint: true,
    },
    { argv: ["--drop-slot"], message: "--drop-slot needs a slot to be specified using --slot", hint: true },
    {
      argv: ["-D", "x", "--synchronous", "--no-sync"],
      message: "cannot use --synchronous together with --no-sync",
      hint: true,
    },
    { argv: ["-D", "x", "-Z", "foo"], message: 'unrecognized compression algorithm: "foo"', hint: false },
    {
      argv: ["-D", "x", "-Z", "gzip:12"],
      message:
        'invalid compression specification: compression algorithm "gzip" expects a compression level between 1 and 9 (default at -1)',
      hint: false,
    },
    { argv: ["-D", "x", "-Z", "zstd"], message: "compression with ZSTD is not yet supported", hint: false },
    { argv: ["-D", "x", "-E", "zz"], message: 'could not parse end position "zz"', hint: false },
    { argv: ["-D", "x", "-E", "1"], message: 'could not parse end position "1"', hint: false },
    {
      argv: ["-D", "x", "-E", "1FFFFFFFF/0"],
      message: 'could not parse end position "1FFFFFFFF/0"',
      hint: false,
    },
    {
      argv: ["-D", "x", "-s", "x"],
      message: 'invalid value "x" for option -s/--status-interval',
      hint: false,
    },
    {
      argv: ["-D", "x", "-s", "5s"],
      message: 'invalid value "5s" for option -s/--status-interval',
      hint: false,
    },
    {
      argv: ["-D", "x", "-s", "-1"],
      message: "-s/--status-interval must be in range 0..2147483",
      hint: false,
    },
    {
      argv: ["-D", "x", "-s", "2147484"],
      message: "-s/--status-interval must be in range 0..2147483",
      hint: false,
    },
    {
      argv: ["-D", "x", "-s", "99999999999999999999"],
      message: 'invalid value "99999999999999999999" for option -s/--status-interval',
      hint: false,
    },
    { argv: ["-D", "x", "extra"], message: 'too many command-line arguments (first is "extra")', hint: true },
    { argv: ["--bogus"], message: "unrecognized option '--bogus'", hint: true },
    { argv: ["-x"], message: "invalid option -- 'x'", hint: true },
    { argv: ["-D"], message: "option requires an argument -- 'D'", hint: true },
    { argv: ["--slot"], message: "option '--slot' requires an argument", hint: true },
    { argv: ["--no-loop=yes"], message: "option '--no-loop' doesn't allow an argument", hint: true },
    {
      argv: ["--s=1"],
      // pgwal's --s3-* options join pg_receivewal's three (the abbreviation fails either way).
      message:
        "option '--s' is ambiguous; possibilities: '--status-interval' '--slot' '--synchronous' '--s3-endpoint' '--s3-addressing-style'",
      hint: true,
    },
    {
      argv: ["-D", "x", "--log-format=xml"],
      message: 'invalid value "xml" for option --log-format (choose from json, pretty)',
      hint: true,
    },
  ];
  for (const row of table) {
    const outcome = usageError(row.argv);
    assert.equal(outcome.message, row.message, `argv ${JSON.stringify(row.argv)}`);
    assert.equal(outcome.showHint, row.hint, `hint for ${JSON.stringify(row.argv)}`);
    assert.equal(outcome.exitCode, ExitCode.Failure);
    assert.equal(outcome.exitCode, 1);
  }
});

test("checks run in pg_receivewal's order", () => {
  // A bad -E is reported while reading options, before the missing directory.
  assert.equal(usageError(["-E", "zz"]).message, 'could not parse end position "zz"');
  // The first bad value on the command line wins, as in getopt's loop.
  assert.equal(
    usageError(["-D", "x", "-s", "x", "-E", "zz"]).message,
    'invalid value "x" for option -s/--status-interval',
  );
  assert.equal(usageError(["-D", "x", "-E", "zz", "-s", "x"]).message, 'could not parse end position "zz"');
  // Slot checks come before the missing directory, which comes before compression.
  assert.equal(
    usageError(["--drop-slot", "--create-slot"]).message,
    "cannot use --create-slot together with --drop-slot",
  );
  assert.equal(usageError(["-Z", "foo"]).message, "no target directory specified");
  assert.equal(
    usageError(["-Z", "foo", "--synchronous", "--no-sync"]).message,
    "cannot use --synchronous together with --no-sync",
  );
});

test("--create-slot and --drop-slot need no directory", () => {
  const create = run(["--create-slot", "-S", "s", "--if-not-exists"]);
  assert.equal(create.createSlot, true);
  assert.equal(create.ifNotExists, true);
  assert.equal(create.directory, undefined);
  assert.equal(run(["--drop-slot", "--slot=s"]).dropSlot, true);
});

test("-E is read like sscanf %X/%X; 0/0 means no end position", () => {
  assert.equal(parseEndpos("16/B374D848"), 0x16_b374_d848n);
  assert.equal(parseEndpos(" 0x1/0x2"), 0x1_0000_0002n);
  assert.equal(parseEndpos("1/2zz"), 0x1_0000_0002n);
  assert.equal(parseEndpos("ffffffff/ffffffff"), 0xffff_ffff_ffff_ffffn);
  assert.equal(parseEndpos("1 /2"), undefined);
  assert.equal(parseEndpos("/2"), undefined);
  assert.equal(parseEndpos("g/1"), undefined);
  assert.equal(run(["-D", "x", "-E", "0/0"]).endpos, undefined);
});

test("-w/-W: the last one given wins", () => {
  assert.equal(run(["-D", "x", "-w", "-W"]).passwordPrompt, "always");
  assert.equal(run(["-D", "x", "-W", "-w"]).passwordPrompt, "never");
});

test("--help and --version, also after other options, under both names", () => {
  const help = parseReceiveArgs(["-D", "x", "--help"], asReceivewal);
  assert.equal(help.kind, "help");
  assert.match((help as { text: string }).text, /^pg_receivewal streams write-ahead log/);
  assert.match((help as { text: string }).text, /--create-slot/);
  const pgwalHelp = parseReceiveArgs(["-?"], { programName: "pgwal" });
  assert.match((pgwalHelp as { text: string }).text, /pgwal receive \[OPTION\]\.\.\./);
  const version = parseReceiveArgs(["-V"], asReceivewal);
  assert.equal(version.kind, "version");
  assert.match(
    (version as { text: string }).text,
    /^pg_receivewal \(PostgreSQL\) 18\.1 \(pgwal \d+\.\d+\.\d+\)$/,
  );
  assert.equal((version as { exitCode: number }).exitCode, 0);
});

test("PGWAL_* variables supply options; the command line wins", () => {
  assert.equal(envVariableName("no-loop"), "PGWAL_NO_LOOP");
  const env = {
    PGWAL_DIRECTORY: "/env-wal",
    PGWAL_SLOT: "envslot",
    PGWAL_NO_LOOP: "true",
    PGWAL_STATUS_INTERVAL: "3",
    PGWAL_VERBOSE: "2",
    PGWAL_COMPRESS: "gzip",
    PGWAL_NO_PASSWORD: "1",
    PGWAL_ENDPOS: "0/100",
  };
  const fromEnv = run([], env);
  assert.equal(fromEnv.directory, "/env-wal");
  assert.equal(fromEnv.slot, "envslot");
  assert.equal(fromEnv.noLoop, true);
  assert.equal(fromEnv.statusIntervalSeconds, 3);
  assert.equal(fromEnv.verbose, 2);
  assert.deepEqual(fromEnv.compression, { method: "gzip" });
  assert.equal(fromEnv.passwordPrompt, "never");
  assert.equal(fromEnv.endpos, 0x100n);

  const overridden = run(["-D", "/cli", "-S", "cli", "-v", "-s", "7"], env);
  assert.equal(overridden.directory, "/cli");
  assert.equal(overridden.slot, "cli");
  assert.equal(overridden.verbose, 1);
  assert.equal(overridden.statusIntervalSeconds, 7);
  // An empty variable counts as unset.
  assert.equal(usageError([], { PGWAL_DIRECTORY: "" }).message, "no target directory specified");
  assert.equal(run(["-D", "x"], { PGWAL_NO_LOOP: "off" }).noLoop, false);
  // No env given: PGWAL_* in the real environment are not read (parsing stays pure).
  process.env.PGWAL_SLOT = "leak";
  try {
    assert.equal(parseReceiveArgs(["-D", "x"], asReceivewal).kind, "run");
    assert.equal(run(["-D", "x"]).slot, undefined);
  } finally {
    delete process.env.PGWAL_SLOT;
  }
});

test("bad PGWAL_* values are usage errors, and PGWAL_PASSWORD is never echoed", () => {
  assert.equal(
    usageError([], { PGWAL_NO_LOOP: "maybe", PGWAL_DIRECTORY: "x" }).message,
    'invalid value "maybe" for environment variable PGWAL_NO_LOOP (expected true or false)',
  );
  assert.equal(
    usageError([], { PGWAL_STATUS_INTERVAL: "x", PGWAL_DIRECTORY: "x" }).message,
    'invalid value "x" for environment variable PGWAL_STATUS_INTERVAL',
  );
  assert.equal(
    usageError([], { PGWAL_ENDPOS: "later", PGWAL_DIRECTORY: "x" }).message,
    'could not parse end position "later" in environment variable PGWAL_ENDPOS',
  );
  const secret = usageError(["-D", "x"], { PGWAL_PASSWORD: "hunter2" });
  assert.doesNotMatch(secret.message, /hunter2/);
  assert.match(secret.message, /PGPASSWORD/);
  assert.equal(run(["-D", "x"], { PGWAL_PASSWORD: "true" }).passwordPrompt, "always");
  assert.equal(
    run(["-D", "x"], { PGWAL_PASSWORD: "true", PGWAL_NO_PASSWORD: "true" }).passwordPrompt,
    "never",
  );
  // A variable whose option is on the command line is not even parsed.
  assert.equal(run(["-D", "x", "-s", "1"], { PGWAL_STATUS_INTERVAL: "junk" }).statusIntervalSeconds, 1);
});

test("--target s3://… and its options, also from PGWAL_* variables", () => {
  const args = run([
    "-D",
    "/wal",
    "--slot=s",
    "--target=s3://bucket/db1/wal",
    "--s3-endpoint=http://127.0.0.1:9000",
    "--s3-addressing-style=virtual",
    "--upload-concurrency=8",
    "--partial-upload-interval=0",
    "--upload-holds-slot",
    "--upload-state-file=/var/lib/pgwal/up.json",
  ]);
  assert.equal(args.target, "s3://bucket/db1/wal");
  assert.equal(args.s3Endpoint, "http://127.0.0.1:9000");
  assert.equal(args.s3Addressing, "virtual");
  assert.equal(args.uploadConcurrency, 8);
  assert.equal(args.partialUploadIntervalSeconds, 0);
  assert.equal(args.uploadHoldsSlot, true);
  assert.equal(args.uploadStateFile, "/var/lib/pgwal/up.json");
  const fromEnv = run(["-D", "/wal"], { PGWAL_TARGET: "s3://b2/x", PGWAL_UPLOAD_CONCURRENCY: "2" });
  assert.equal(fromEnv.target, "s3://b2/x");
  assert.equal(fromEnv.uploadConcurrency, 2);
  for (const [argv, message] of [
    [["--target=/local/dir"], 'invalid value "/local/dir" for option --target (expected s3://BUCKET/PREFIX)'],
    [["--upload-holds-slot"], "--upload-holds-slot needs an object store given with --target"],
    [
      ["--target=s3://b/x", "--upload-holds-slot"],
      "--upload-holds-slot needs a slot to be specified using --slot",
    ],
    [["--s3-endpoint=http://x"], "--s3-endpoint needs an object store given with --target"],
    [
      ["--target=s3://b/x", "--upload-concurrency=0"],
      'invalid value "0" for option --upload-concurrency (expected 1 to 64)',
    ],
    [
      ["--target=s3://b/x", "--s3-addressing-style=dns"],
      'invalid value "dns" for option --s3-addressing-style (choose from path, virtual)',
    ],
  ] as const) {
    const outcome = usageError(["-D", "/wal", ...argv]);
    assert.equal(outcome.message, message);
    assert.equal(outcome.exitCode, 1);
  }
});

test("-Z zstd: pgwal accepts it (when Node.js has zstd), pg_receivewal refuses it as the original does", () => {
  const asReceivewalOutcome = parseReceiveArgs(["-D", "x", "-Z", "zstd:5"], asReceivewal);
  assert.equal(asReceivewalOutcome.kind, "usage-error");
  assert.equal(
    (asReceivewalOutcome as Extract<ParseOutcome, { kind: "usage-error" }>).message,
    "compression with ZSTD is not yet supported",
  );
  const asPgwal = parseReceiveArgs(["-D", "x", "--compress=zstd:level=5,long"], { programName: "pgwal" });
  if (zstdAvailable()) {
    assert.equal(asPgwal.kind, "run");
    assert.deepEqual((asPgwal as Extract<ParseOutcome, { kind: "run" }>).args.compression, {
      method: "zstd",
      level: 5,
      long: true,
    });
  } else {
    assert.equal(asPgwal.kind, "usage-error");
    assert.match(
      (asPgwal as Extract<ParseOutcome, { kind: "usage-error" }>).message,
      /needs Node\.js 22\.15 or later/,
    );
  }
});
