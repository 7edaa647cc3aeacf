import assert from "node:assert/strict";
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { lookupPgpass, type PgpassLookup } from "../../src/connection/pgpass.js";

const dir = mkdtempSync(join(tmpdir(), "pgwal-pgpass-"));
after(() => rmSync(dir, { recursive: true, force: true }));
let counter = 0;

function passfile(content: string, mode = 0o600): string {
  const path = join(dir, `pgpass-${counter++}`);
  writeFileSync(path, content);
  chmodSync(path, mode);
  return path;
}

const KEY: PgpassLookup = { host: "db.example", port: 5432, dbname: "replication", user: "repl" };

test("exact match returns the password; first matching line wins", async () => {
  const file = passfile(
    ["db.example:5432:replication:repl:first", "db.example:5432:replication:repl:second"].join("\n"),
  );
  assert.equal(await lookupPgpass(file, KEY), "first");
});

test("each field must match: host, port, database, user", async () => {
  const file = passfile(
    [
      "other:5432:replication:repl:wrong-host",
      "db.example:5433:replication:repl:wrong-port",
      "db.example:5432:postgres:repl:wrong-db",
      "db.example:5432:replication:other:wrong-user",
      "db.example:5432:replication:repl:right",
    ].join("\n"),
  );
  assert.equal(await lookupPgpass(file, KEY), "right");
  assert.equal(await lookupPgpass(file, { ...KEY, port: 6543 }), undefined);
});

test("a field that is a prefix of the wanted value does not match", async () => {
  const file = passfile("db:5432:replication:repl:short\ndb.example.org:5432:replication:repl:long\n");
  assert.equal(await lookupPgpass(file, KEY), undefined);
});

test("* matches any value, but only as a whole field", async () => {
  assert.equal(await lookupPgpass(passfile("*:*:*:*:any"), KEY), "any");
  assert.equal(await lookupPgpass(passfile("*:5432:replication:*:some"), KEY), "some");
  assert.equal(await lookupPgpass(passfile("db.*:*:*:*:glob"), KEY), undefined);
});

test("the replication database line matches a physical replication connection", async () => {
  const file = passfile("*:*:postgres:repl:for-sql\n*:*:replication:repl:for-walsender\n");
  assert.equal(await lookupPgpass(file, KEY), "for-walsender");
  assert.equal(await lookupPgpass(file, { ...KEY, dbname: "postgres" }), "for-sql");
});

test("backslash escapes colons and backslashes, in key fields and in the password", async () => {
  const file = passfile("\\:\\:1:5432:replication:repl:pa\\:ss\\\\word:ignored-field\n");
  assert.equal(await lookupPgpass(file, { ...KEY, host: "::1" }), "pa:ss\\word");
  const userWithColon = passfile("db.example:5432:replication:a\\:b:pw\n");
  assert.equal(await lookupPgpass(userWithColon, { ...KEY, user: "a:b" }), "pw");
});

test("comments, blank lines and CRLF line ends are handled", async () => {
  const file = passfile(
    "# db.example:5432:replication:repl:commented\r\n\r\ndb.example:5432:replication:repl:crlf\r\n",
  );
  assert.equal(await lookupPgpass(file, KEY), "crlf");
});

test("localhost matches an empty host and the default socket directories, not other directories", async () => {
  const file = passfile("localhost:5432:replication:repl:local\n");
  assert.equal(await lookupPgpass(file, { ...KEY, host: "" }), "local");
  assert.equal(await lookupPgpass(file, { ...KEY, host: "/var/run/postgresql" }), "local");
  assert.equal(await lookupPgpass(file, { ...KEY, host: "/tmp" }), "local");
  assert.equal(await lookupPgpass(file, { ...KEY, host: "/srv/pg/sockets" }), undefined);
  const bySocketDir = passfile("/srv/pg/sockets:5432:replication:repl:by-dir\n");
  assert.equal(await lookupPgpass(bySocketDir, { ...KEY, host: "/srv/pg/sockets" }), "by-dir");
});

test("a matching line with an empty password returns an empty string", async () => {
  assert.equal(await lookupPgpass(passfile("*:*:*:*:\n"), KEY), "");
});

test("missing file: undefined, no warning", async () => {
  const warnings: string[] = [];
  assert.equal(await lookupPgpass(join(dir, "nope"), KEY, (m) => warnings.push(m)), undefined);
  assert.deepEqual(warnings, []);
});

test("group- or world-accessible file is ignored with libpq's warning", async () => {
  for (const mode of [0o640, 0o604, 0o660]) {
    const file = passfile("*:*:*:*:secret\n", mode);
    const warnings: string[] = [];
    assert.equal(await lookupPgpass(file, KEY, (m) => warnings.push(m)), undefined);
    assert.deepEqual(warnings, [
      `password file "${file}" has group or world access; permissions should be u=rw (0600) or less`,
    ]);
  }
  assert.equal(await lookupPgpass(passfile("*:*:*:*:secret\n", 0o400), KEY), "secret");
});

test("a directory is not a password file", async () => {
  const sub = join(dir, "a-directory");
  mkdirSync(sub);
  const warnings: string[] = [];
  assert.equal(await lookupPgpass(sub, KEY, (m) => warnings.push(m)), undefined);
  assert.deepEqual(warnings, [`password file "${sub}" is not a plain file`]);
});

test("empty database or user name never matches (libpq)", async () => {
  const file = passfile("*:*:*:*:x\n");
  assert.equal(await lookupPgpass(file, { ...KEY, dbname: "" }), undefined);
  assert.equal(await lookupPgpass(file, { ...KEY, user: "" }), undefined);
});
