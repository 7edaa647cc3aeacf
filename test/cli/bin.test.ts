/**
 * bin/pgwal as users run it: a real `node` process, under its own name and through a symlink
 * named pg_receivewal in another directory, with stdin closed. Needs the compiled dist/ (npx tsc).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../../../", import.meta.url));
const bin = join(root, "bin", "pgwal");
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;

const linkDir = mkdtempSync(join(tmpdir(), "pgwal-bin-test-"));
const dropIn = join(linkDir, "pg_receivewal");
symlinkSync(bin, dropIn);
after(() => rmSync(linkDir, { recursive: true, force: true }));

/** Runs a script with no stdin at all (like a daemon), from an unrelated working directory. */
function runScript(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  const result = spawnSync(process.execPath, [script, ...args], {
    cwd: tmpdir(),
    env: { PATH: process.env.PATH, HOME: linkDir, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: 20_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test("symlinked as pg_receivewal: --version speaks pg_receivewal's first line", () => {
  const result = runScript(dropIn, ["--version"]);
  assert.equal(result.status, 0, result.stderr);
  assert.equal(result.stdout, `pg_receivewal (PostgreSQL) 18.1 (pgwal ${version})\n`);
  assert.equal(result.stderr, "");
});

test("symlinked as pg_receivewal: a usage error prints error and hint lines and exits 1", () => {
  const result = runScript(dropIn, ["--create-slot"]);
  assert.equal(result.status, 1);
  assert.equal(result.stdout, "");
  assert.equal(
    result.stderr,
    'pg_receivewal: error: --create-slot needs a slot to be specified using --slot\npg_receivewal: hint: Try "pg_receivewal --help" for more information.\n',
  );
});

test("symlink executed directly (shebang) behaves the same", () => {
  const result = spawnSync(dropIn, ["--synchronous", "--no-sync", "-D", "/tmp"], {
    cwd: "/",
    stdio: ["ignore", "pipe", "pipe"],
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /^pg_receivewal: error: cannot use --synchronous together with --no-sync\n/);
});

test("pgwal: command list, receive help, errors prefixed with pgwal", () => {
  const help = runScript(bin, ["--help"]);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /pgwal receive/);
  const receiveHelp = runScript(bin, ["receive", "--help"]);
  assert.equal(receiveHelp.status, 0);
  assert.match(receiveHelp.stdout, /-D, --directory=DIR/);
  assert.match(receiveHelp.stdout, /--drop-slot/);
  const noDirectory = runScript(bin, ["receive", "-v"]);
  assert.equal(noDirectory.status, 1);
  assert.equal(
    noDirectory.stderr,
    'pgwal: error: no target directory specified\npgwal: hint: Try "pgwal receive --help" for more information.\n',
  );
  const unknown = runScript(bin, ["frobnicate"]);
  assert.equal(unknown.status, 1);
  assert.match(unknown.stderr, /^pgwal: error: unknown command "frobnicate"\n/);
  const option = runScript(bin, ["--bogus"]);
  assert.equal(option.status, 1);
  assert.match(option.stderr, /^pgwal: error: unrecognized option '--bogus'\n/);
});

test("a missing directory fails before connecting, as plain text plus one JSON line", () => {
  const result = runScript(dropIn, ["-D", join(linkDir, "missing"), "-h", "127.0.0.1", "-p", "1"]);
  assert.equal(result.status, 1);
  const lines = result.stderr.trim().split("\n");
  assert.equal(
    lines.at(-1),
    `pg_receivewal: error: could not open directory "${join(linkDir, "missing")}": No such file or directory`,
  );
  const json = JSON.parse(lines[0]!) as Record<string, unknown>;
  assert.equal(json.level, "fatal");
  assert.equal(json.errorType, "UsageError");
});

test("PGWAL_* environment variables reach the parser of the real process", () => {
  const result = runScript(dropIn, [], { PGWAL_CREATE_SLOT: "true", PGWAL_DROP_SLOT: "true" });
  assert.equal(result.status, 1);
  assert.match(result.stderr, /^pg_receivewal: error: cannot use --create-slot together with --drop-slot\n/);
});

test("connection refused: exit 1 with the connection error, nothing on stdout", () => {
  // Port 1 on loopback: nothing listens there, so the first connection fails at once.
  const result = runScript(dropIn, ["-D", linkDir, "-h", "127.0.0.1", "-p", "1", "--log-format=pretty"]);
  assert.equal(result.status, 1);
  assert.equal(result.stdout, "");
  assert.match(result.stderr, /^pg_receivewal: error: .*127\.0\.0\.1.*(refused|failed)/m);
  assert.doesNotMatch(result.stderr, /^\s+at /m);
});
