import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import {
  describeTarget,
  effectiveSslMode,
  resolveConnectionSettings,
  type SettingsSources,
} from "../../src/connection/conninfo.js";
import { UsageError } from "../../src/errors.js";

const root = mkdtempSync(join(tmpdir(), "pgwal-conninfo-"));
after(() => rmSync(root, { recursive: true, force: true }));

/** An empty home directory and one socket directory without sockets: nothing leaks in from this machine. */
const home = join(root, "home");
const sockets = join(root, "sockets");
mkdirSync(home);
mkdirSync(sockets);

function resolve(sources: SettingsSources = {}) {
  return resolveConnectionSettings({
    env: {},
    osUser: "alice",
    homeDir: home,
    socketDirs: [sockets],
    ...sources,
  });
}

function usageError(message: string) {
  return new UsageError(message);
}

test("defaults: OS user, dbname = user, default socket, port 5432, prefer modes", () => {
  assert.deepEqual(resolve(), {
    targets: [{ host: sockets, port: 5432, socketPath: `${sockets}/.s.PGSQL.5432` }],
    user: "alice",
    passfile: join(home, ".pgpass"),
    dbname: "alice",
    sslmode: "prefer",
    sslsni: true,
    channelBinding: "prefer",
  });
});

test("environment variables supply values", () => {
  const settings = resolve({
    env: {
      PGHOST: "db.example",
      PGPORT: "6000",
      PGUSER: "bob",
      PGPASSWORD: "pw",
      PGPASSFILE: "/etc/pgpass",
      PGDATABASE: "app",
      PGAPPNAME: "nightly",
      PGOPTIONS: "-c work_mem=1MB",
      PGSSLMODE: "require",
      PGSSLROOTCERT: "/ca.crt",
      PGSSLCERT: "/c.crt",
      PGSSLKEY: "/c.key",
      PGSSLSNI: "0",
      PGCONNECT_TIMEOUT: "7",
      PGCHANNELBINDING: "require",
    },
  });
  assert.deepEqual(settings, {
    targets: [{ host: "db.example", port: 6000 }],
    user: "bob",
    password: "pw",
    passfile: "/etc/pgpass",
    dbname: "app",
    applicationName: "nightly",
    options: "-c work_mem=1MB",
    sslmode: "require",
    sslrootcert: "/ca.crt",
    sslcert: "/c.crt",
    sslkey: "/c.key",
    sslsni: false,
    connectTimeoutMs: 7000,
    channelBinding: "require",
  });
});

test("precedence: forced > overrides > connection string > environment", () => {
  const env = {
    PGHOST: "env-host",
    PGUSER: "env-user",
    PGPORT: "1111",
    PGDATABASE: "env-db",
    PGAPPNAME: "env-app",
  };
  const fromString = resolve({ env, connectionString: "host=str-host user=str-user dbname=str-db" });
  assert.equal(fromString.targets[0]!.host, "str-host");
  assert.equal(fromString.targets[0]!.port, 1111);
  assert.equal(fromString.user, "str-user");
  assert.equal(fromString.applicationName, "env-app");

  const withOverrides = resolve({
    env,
    connectionString: "host=str-host user=str-user",
    overrides: { user: "cli-user" },
  });
  assert.equal(withOverrides.user, "cli-user");
  assert.equal(withOverrides.targets[0]!.host, "str-host");

  const forced = resolve({
    env,
    connectionString: "postgresql://str-user@str-host/str-db?replication=database",
    overrides: { dbname: "cli-db" },
    forced: { dbname: "replication", replication: "true", fallback_application_name: "pg_receivewal" },
  });
  assert.equal(forced.dbname, "replication");
  assert.equal(forced.replication, "true");
  assert.equal(forced.fallbackApplicationName, "pg_receivewal");
  assert.equal(forced.user, "str-user");
});

test("empty values count as not given, so the next source applies", () => {
  const settings = resolve({
    env: { PGHOST: "env-host", PGPASSWORD: "" },
    connectionString: "host='' password=''",
  });
  assert.equal(settings.targets[0]!.host, "env-host");
  assert.equal(settings.password, undefined);
});

test("PGREQUIRESSL=1 means sslmode=require unless PGSSLMODE is set", () => {
  assert.equal(resolve({ env: { PGREQUIRESSL: "1" } }).sslmode, "require");
  assert.equal(resolve({ env: { PGREQUIRESSL: "0" } }).sslmode, "prefer");
  assert.equal(resolve({ env: { PGREQUIRESSL: "1", PGSSLMODE: "disable" } }).sslmode, "disable");
});

test("several hosts: one port for all, or one port each; empty entries use the defaults", () => {
  assert.deepEqual(resolve({ connectionString: "host=h1,h2 port=5433" }).targets, [
    { host: "h1", port: 5433 },
    { host: "h2", port: 5433 },
  ]);
  assert.deepEqual(resolve({ connectionString: "host=h1,/run/pg,h3 port=1,,3" }).targets, [
    { host: "h1", port: 1 },
    { host: "/run/pg", port: 5432, socketPath: "/run/pg/.s.PGSQL.5432" },
    { host: "h3", port: 3 },
  ]);
  assert.deepEqual(resolve({ connectionString: "host=,h2" }).targets, [
    { host: sockets, port: 5432, socketPath: `${sockets}/.s.PGSQL.5432` },
    { host: "h2", port: 5432 },
  ]);
});

test("a multi-host URI without ports sets an empty port list, so PGPORT does not apply (as libpq)", () => {
  const env = { PGPORT: "6000" };
  assert.deepEqual(
    resolve({ env, connectionString: "postgresql://h1,h2/db" }).targets.map((t) => t.port),
    [5432, 5432],
  );
  assert.deepEqual(
    resolve({ env, connectionString: "postgresql://h1/db" }).targets.map((t) => t.port),
    [6000],
  );
});

test("hostaddr is dialled; host only names the server", () => {
  const [target] = resolve({ connectionString: "host=db.example hostaddr=127.0.0.1 port=5433" }).targets;
  assert.deepEqual(target, { host: "db.example", hostaddr: "127.0.0.1", port: 5433 });
  assert.equal(describeTarget(target!), 'host "db.example" (127.0.0.1), port 5433');
  const [bare] = resolve({ connectionString: "hostaddr=::1" }).targets;
  assert.deepEqual(bare, { host: "::1", hostaddr: "::1", port: 5432 });
  assert.equal(describeTarget(bare!), 'host "::1", port 5432');
  assert.deepEqual(
    resolve({ connectionString: "hostaddr=10.0.0.1,10.0.0.2" }).targets.map((t) => t.hostaddr),
    ["10.0.0.1", "10.0.0.2"],
  );
});

test("describeTarget for TCP and unix sockets", () => {
  assert.equal(describeTarget({ host: "127.0.0.1", port: 5432 }), 'host "127.0.0.1", port 5432');
  assert.equal(
    describeTarget({ host: "/tmp", port: 5432, socketPath: "/tmp/.s.PGSQL.5432" }),
    'socket "/tmp/.s.PGSQL.5432"',
  );
});

test("list length mismatches use libpq's messages", () => {
  assert.throws(
    () => resolve({ connectionString: "host=a,b port=1,2,3" }),
    usageError("could not match 3 port numbers to 2 hosts"),
  );
  assert.throws(
    () => resolve({ connectionString: "host=a,b hostaddr=127.0.0.1" }),
    usageError("could not match 2 host names to 1 hostaddr values"),
  );
});

test("invalid values are refused with libpq's messages", () => {
  const cases: [SettingsSources, string][] = [
    [{ connectionString: "port=abc" }, 'invalid integer value "abc" for connection option "port"'],
    [{ connectionString: "port=70000" }, 'invalid port number: "70000"'],
    [{ connectionString: "port=0" }, 'invalid port number: "0"'],
    [{ env: { PGPORT: "5432x" } }, 'invalid integer value "5432x" for connection option "port"'],
    [{ connectionString: "sslmode=required" }, 'invalid sslmode value: "required"'],
    [{ env: { PGCHANNELBINDING: "always" } }, 'invalid channel_binding value: "always"'],
    [
      { connectionString: "connect_timeout=soon" },
      'invalid integer value "soon" for connection option "connect_timeout"',
    ],
    [
      { connectionString: "sslrootcert=system sslmode=require" },
      'weak sslmode "require" may not be used with sslrootcert=system (use "verify-full")',
    ],
    [{ overrides: { hots: "x" } }, 'invalid connection option "hots"'],
    [{ connectionString: "target_session_attrs=bogus" }, 'invalid target_session_attrs value: "bogus"'],
  ];
  for (const [sources, message] of cases) assert.throws(() => resolve(sources), usageError(message), message);
});

test("port numbers allow surrounding whitespace, as pqParseIntParam", () => {
  assert.equal(resolve({ connectionString: "port=' 5433 '" }).targets[0]!.port, 5433);
});

test("connect_timeout: seconds to ms, at least 2 s, zero or negative means none", () => {
  assert.equal(resolve({ connectionString: "connect_timeout=10" }).connectTimeoutMs, 10_000);
  assert.equal(resolve({ connectionString: "connect_timeout=1" }).connectTimeoutMs, 2000);
  assert.equal(resolve({ connectionString: "connect_timeout=0" }).connectTimeoutMs, undefined);
  assert.equal(resolve({ connectionString: "connect_timeout=-3" }).connectTimeoutMs, undefined);
});

test("sslrootcert=system makes verify-full the default sslmode", () => {
  const settings = resolve({ env: { PGSSLROOTCERT: "system" } });
  assert.equal(settings.sslmode, "verify-full");
  assert.equal(settings.sslrootcert, "system");
  assert.equal(
    resolve({ connectionString: "sslrootcert=system sslmode=verify-full" }).sslmode,
    "verify-full",
  );
  // Any weaker mode, even an explicit "disable", is refused (libpq 16+).
  assert.throws(
    () => resolve({ connectionString: "sslrootcert=system sslmode=disable" }),
    usageError('weak sslmode "disable" may not be used with sslrootcert=system (use "verify-full")'),
  );
});

test("options pgwal does not implement are refused rather than ignored", () => {
  const cases: [string, string][] = [
    ["service=prod", 'connection option "service" is not supported by pgwal'],
    ["require_auth=scram-sha-256", 'connection option "require_auth" is not supported by pgwal'],
    ["requirepeer=postgres", 'connection option "requirepeer" is not supported by pgwal'],
    ["sslcrl=/crl.pem", 'connection option "sslcrl" is not supported by pgwal'],
    [
      "target_session_attrs=primary",
      'connection option "target_session_attrs" value "primary" is not supported by pgwal',
    ],
    [
      "load_balance_hosts=random",
      'connection option "load_balance_hosts" value "random" is not supported by pgwal',
    ],
    ["sslnegotiation=direct", 'connection option "sslnegotiation" value "direct" is not supported by pgwal'],
    ["gssencmode=require", 'gssencmode value "require" invalid when GSSAPI support is not compiled in'],
    [
      "ssl_max_protocol_version=TLSv1.2",
      'connection option "ssl_max_protocol_version" value "TLSv1.2" is not supported by pgwal',
    ],
  ];
  for (const [text, message] of cases)
    assert.throws(() => resolve({ connectionString: text }), usageError(message));
  assert.throws(
    () => resolve({ env: { PGSERVICE: "prod" } }),
    usageError('connection option "service" is not supported by pgwal'),
  );
  // Tuning options with no security meaning are accepted (and ignored).
  resolve({
    connectionString:
      "keepalives=1 keepalives_idle=30 tcp_user_timeout=1000 client_encoding=UTF8 gssencmode=prefer target_session_attrs=any sslcertmode=allow ssl_min_protocol_version=TLSv1.2",
  });
});

test("the default socket directory is the first holding the port's socket, else the first that exists", () => {
  const first = join(root, "first");
  const second = join(root, "second");
  mkdirSync(first);
  mkdirSync(second);
  writeFileSync(join(second, ".s.PGSQL.5999"), "");
  const socketDirs = [join(root, "missing"), first, second];
  assert.equal(
    resolve({ socketDirs, connectionString: "port=5999" }).targets[0]!.socketPath,
    `${second}/.s.PGSQL.5999`,
  );
  assert.equal(
    resolve({ socketDirs, connectionString: "port=5432" }).targets[0]!.socketPath,
    `${first}/.s.PGSQL.5432`,
  );
  assert.equal(resolve({ socketDirs: [join(root, "missing")] }).targets[0]!.host, join(root, "missing"));
});

test("socket paths longer than sun_path are refused", () => {
  const long = `/${"d".repeat(100)}`;
  assert.throws(
    () => resolve({ connectionString: `host=${long}` }),
    usageError(`Unix-domain socket path "${long}/.s.PGSQL.5432" is too long (maximum 107 bytes)`),
  );
});

test("default client certificate files are used only when they exist; root.crt turns require into verify-ca", () => {
  const certHome = join(root, "cert-home");
  mkdirSync(join(certHome, ".postgresql"), { recursive: true });
  const plain = resolve({ homeDir: certHome, connectionString: "sslmode=require" });
  assert.equal(plain.sslrootcert, undefined);
  assert.equal(plain.sslcert, undefined);
  assert.equal(effectiveSslMode(plain), "require");

  for (const name of ["root.crt", "postgresql.crt", "postgresql.key"]) {
    writeFileSync(join(certHome, ".postgresql", name), "");
  }
  const withFiles = resolve({ homeDir: certHome, connectionString: "sslmode=require" });
  assert.equal(withFiles.sslrootcert, join(certHome, ".postgresql", "root.crt"));
  assert.equal(withFiles.sslcert, join(certHome, ".postgresql", "postgresql.crt"));
  assert.equal(withFiles.sslkey, join(certHome, ".postgresql", "postgresql.key"));
  assert.equal(effectiveSslMode(withFiles), "verify-ca");
  assert.equal(effectiveSslMode({ ...withFiles, sslmode: "prefer" }), "prefer");
  assert.equal(effectiveSslMode({ ...withFiles, sslmode: "verify-full" }), "verify-full");

  // An explicitly named root certificate that does not exist does not turn on verification.
  const missing = resolve({
    homeDir: certHome,
    connectionString: `sslmode=require sslrootcert=${join(root, "none.crt")}`,
  });
  assert.equal(effectiveSslMode(missing), "require");
});

test("HOME from the given environment locates .pgpass when no homeDir is injected", () => {
  const settings = resolveConnectionSettings({
    env: { HOME: "/home/carol" },
    osUser: "carol",
    socketDirs: [sockets],
  });
  assert.equal(settings.passfile, "/home/carol/.pgpass");
});
