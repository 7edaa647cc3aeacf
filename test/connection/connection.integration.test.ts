import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, chown, copyFile, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  createPhysicalSlot,
  dropSlot,
  identifySystem,
  readReplicationSlot,
  startReplication,
  timelineHistory,
} from "../../src/connection/commands.js";
import { PgConnection } from "../../src/connection/connection.js";
import { type ConnParams, resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { AuthenticationError, ConnectionError, ServerError } from "../../src/errors.js";
import { parseLsn, segmentNumberOf, segmentStartOf } from "../../src/lsn.js";
import { parseXLogData, XLOG_DATA } from "../../src/protocol/replication.js";
import { walFileName } from "../../src/wal/names.js";
import {
  clientKeyPath,
  type PgCluster,
  startSharedCluster,
  TEST_USERS,
  TLS_FIXTURES,
} from "../support/cluster.js";

let cluster: PgCluster;

before(async () => {
  cluster = await startSharedCluster({ name: "connection", walSegmentSizeMb: 1 });
});

/** Settings for a physical replication connection to the shared cluster, plus `extra` keywords. */
function settings(extra: ConnParams) {
  return resolveConnectionSettings({
    overrides: {
      host: "127.0.0.1",
      port: String(cluster.port),
      sslrootcert: "/nonexistent/root.crt",
      ...extra,
    },
    forced: { replication: "true" },
    env: {},
    homeDir: "/nonexistent",
  });
}

async function connect(extra: ConnParams): Promise<PgConnection> {
  return PgConnection.connect(settings({ dbname: "replication", ...extra }));
}

async function assertConnects(extra: ConnParams, expectTls?: boolean): Promise<void> {
  const conn = await connect(extra);
  try {
    const identity = await identifySystem(conn);
    assert.equal(identity.dbname, null);
    if (expectTls !== undefined) assert.equal(conn.usesTls, expectTls);
  } finally {
    await conn.close();
  }
}

describe("authentication methods", () => {
  test("trust", () => assertConnects({ user: TEST_USERS.trust.name }));
  test("cleartext password", () =>
    assertConnects({ user: TEST_USERS.password.name, password: TEST_USERS.password.password }));
  test("md5", () => assertConnects({ user: TEST_USERS.md5.name, password: TEST_USERS.md5.password }));
  test("scram-sha-256 without TLS", () =>
    assertConnects(
      { user: TEST_USERS.scram.name, password: TEST_USERS.scram.password, sslmode: "disable" },
      false,
    ));
  test("scram-sha-256-plus with channel_binding=require over TLS", () =>
    assertConnects(
      {
        user: TEST_USERS.scram.name,
        password: TEST_USERS.scram.password,
        sslmode: "require",
        channel_binding: "require",
      },
      true,
    ));
  test("client certificate", async () =>
    assertConnects(
      {
        user: TEST_USERS.cert.name,
        sslmode: "verify-full",
        host: "localhost",
        hostaddr: "127.0.0.1",
        sslrootcert: TLS_FIXTURES.caCert,
        sslcert: TLS_FIXTURES.clientCert,
        sslkey: await clientKeyPath(),
      },
      true,
    ));

  test("wrong password fails with the server's message and SQLSTATE 28P01", async () => {
    const error = await connect({ user: TEST_USERS.scram.name, password: "wrong-password-xyz" }).catch(
      (e: unknown) => e,
    );
    assert.ok(error instanceof ServerError, String(error));
    assert.equal(error.code, "28P01");
    assert.match(error.message, /password authentication failed for user "repl_scram"/);
    assert.doesNotMatch(error.message, /wrong-password-xyz/);
    assert.equal(error.retryable, false);
  });

  test("a needed password that is missing is a clear authentication error", async () => {
    const error = await connect({ user: TEST_USERS.md5.name, passfile: "/nonexistent/pgpass" }).catch(
      (e: unknown) => e,
    );
    assert.ok(error instanceof AuthenticationError, String(error));
    assert.match(error.message, /no password supplied/);
  });

  test("a user without REPLICATION is refused with a clear message", async () => {
    const error = await connect({
      user: TEST_USERS.noReplication.name,
      password: TEST_USERS.noReplication.password,
    }).catch((e: unknown) => e);
    assert.ok(error instanceof ServerError, String(error));
    assert.equal(error.code, "42501");
    assert.match(
      error.message,
      /permission denied to start WAL sender|must be superuser or replication role/,
    );
  });

  test("no pg_hba.conf replication line", async () => {
    const error = await connect({ user: TEST_USERS.noHba.name, password: TEST_USERS.noHba.password }).catch(
      (e: unknown) => e,
    );
    assert.ok(error instanceof ServerError, String(error));
    assert.equal(error.code, "28000");
    assert.match(error.message, /no pg_hba\.conf entry for replication connection/);
  });
});

describe("sslmode", () => {
  const scram = { user: TEST_USERS.scram.name, password: TEST_USERS.scram.password };
  const sslOnly = { user: TEST_USERS.sslOnly.name, password: TEST_USERS.sslOnly.password };

  test("disable never uses TLS", () => assertConnects({ ...scram, sslmode: "disable" }, false));
  test("allow starts without TLS", () => assertConnects({ ...scram, sslmode: "allow" }, false));
  test("allow retries with TLS when the server insists (hostssl-only user)", () =>
    assertConnects({ ...sslOnly, sslmode: "allow" }, true));
  test("prefer uses TLS when offered", () => assertConnects({ ...scram, sslmode: "prefer" }, true));
  test("require uses TLS without verifying", () => assertConnects({ ...scram, sslmode: "require" }, true));
  test("disable cannot reach a hostssl-only user", async () => {
    const error = await connect({ ...sslOnly, sslmode: "disable" }).catch((e: unknown) => e);
    assert.ok(error instanceof ServerError, String(error));
    assert.match(error.message, /pg_hba\.conf rejects replication connection|no encryption/);
  });
  test("verify-ca accepts the test CA", () =>
    assertConnects({ ...scram, sslmode: "verify-ca", sslrootcert: TLS_FIXTURES.caCert }, true));
  test("verify-ca refuses a certificate from another CA", async () => {
    const error = await connect({
      ...scram,
      sslmode: "verify-ca",
      sslrootcert: TLS_FIXTURES.otherCaCert,
    }).catch((e: unknown) => e);
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, /SSL error/);
  });
  test("require with a root certificate behaves as verify-ca", async () => {
    const error = await connect({
      ...scram,
      sslmode: "require",
      sslrootcert: TLS_FIXTURES.otherCaCert,
    }).catch((e: unknown) => e);
    assert.ok(error instanceof ConnectionError, String(error));
  });
  test("verify-full accepts the certificate's host name", () =>
    assertConnects(
      {
        ...scram,
        sslmode: "verify-full",
        host: "localhost",
        hostaddr: "127.0.0.1",
        sslrootcert: TLS_FIXTURES.caCert,
      },
      true,
    ));
  test("verify-full refuses a wrong host name", async () => {
    const error = await connect({ ...scram, sslmode: "verify-full", sslrootcert: TLS_FIXTURES.caCert }).catch(
      (e: unknown) => e,
    );
    assert.ok(error instanceof ConnectionError, String(error));
    // psql's wording for the same refusal (the SAN and, for an IP host, the CN are both examined).
    assert.match(
      error.message,
      /failed: server certificate for "localhost" \(and 1 other name\) does not match host name "127\.0\.0\.1"$/,
    );
  });
  test("verify-full without a root certificate says what to do", async () => {
    const error = await connect({ ...scram, sslmode: "verify-full" }).catch((e: unknown) => e);
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, /root certificate file .* does not exist/);
  });
  test("channel_binding=require refuses a connection without TLS", async () => {
    const error = await connect({ ...scram, sslmode: "disable", channel_binding: "require" }).catch(
      (e: unknown) => e,
    );
    assert.ok(error instanceof AuthenticationError, String(error));
    assert.match(error.message, /channel binding/);
  });
  test("channel_binding=require refuses trust authentication", async () => {
    const error = await connect({
      user: TEST_USERS.trust.name,
      sslmode: "require",
      channel_binding: "require",
    }).catch((e: unknown) => e);
    assert.ok(error instanceof AuthenticationError, String(error));
  });
});

describe("client certificate files, checked as libpq checks them", () => {
  /** The cert user over TLS with `files` (sslcert/sslkey/sslrootcert …); the error, or undefined when it connected. */
  async function withFiles(files: ConnParams): Promise<unknown> {
    return connect({
      user: TEST_USERS.cert.name,
      sslmode: "verify-full",
      host: "localhost",
      hostaddr: "127.0.0.1",
      sslrootcert: TLS_FIXTURES.caCert,
      ...files,
    }).then(
      async (conn) => {
        await conn.close();
        return undefined;
      },
      (error: unknown) => error,
    );
  }

  /** A copy of the client key with `mode`, owned by `uid` (the tests run as root, so chown works). */
  const keyDirs: string[] = [];
  after(() => Promise.all(keyDirs.map((d) => rm(d, { recursive: true, force: true }))));
  async function keyCopy(mode: number, uid?: number): Promise<string> {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-key-"));
    keyDirs.push(dir);
    const path = join(dir, "client.key");
    await copyFile(TLS_FIXTURES.clientKey, path);
    await chmod(path, mode);
    if (uid !== undefined) await chown(path, uid, uid);
    return path;
  }

  const tooOpen =
    /failed: private key file ".*client\.key" has group or world access; file must have permissions u=rw \(0600\) or less if owned by the current user, or permissions u=rw,g=r \(0640\) or less if owned by root$/;

  test("a world-readable key (0644) is refused with libpq's message", async () => {
    const error = await withFiles({ sslcert: TLS_FIXTURES.clientCert, sslkey: await keyCopy(0o644) });
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, tooOpen);
  });

  test("a group-readable key (0640) is refused unless root owns it", {
    skip: process.getuid?.() !== 0,
  }, async () => {
    const error = await withFiles({ sslcert: TLS_FIXTURES.clientCert, sslkey: await keyCopy(0o640, 65534) });
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, tooOpen);
    assert.equal(
      await withFiles({ sslcert: TLS_FIXTURES.clientCert, sslkey: await keyCopy(0o640, 0) }),
      undefined,
    );
  });

  const fileProblems: { name: string; files: () => Promise<ConnParams>; message: RegExp }[] = [
    {
      name: "sslcert without a key",
      files: async () => ({ sslcert: TLS_FIXTURES.clientCert }),
      message: /failed: certificate present, but not private key file "~\/\.postgresql\/postgresql\.key"$/,
    },
    {
      name: "a missing sslkey",
      files: async () => ({ sslcert: TLS_FIXTURES.clientCert, sslkey: "/nonexistent/client.key" }),
      message: /failed: certificate present, but not private key file "\/nonexistent\/client\.key"$/,
    },
    {
      name: "a garbage key",
      files: async () => {
        const path = await keyCopy(0o600);
        await writeFile(path, "not a key\n");
        return { sslcert: TLS_FIXTURES.clientCert, sslkey: path };
      },
      message: /failed: could not load private key file ".*client\.key": /,
    },
    {
      name: "a key that does not belong to the certificate",
      files: async () => {
        const path = await keyCopy(0o600);
        await writeFile(path, await readFile(TLS_FIXTURES.serverKey));
        return { sslcert: TLS_FIXTURES.clientCert, sslkey: path };
      },
      message: /failed: could not load private key file ".*client\.key": /,
    },
    {
      name: "a missing sslcert",
      files: async () => ({ sslcert: "/nonexistent/client.crt", sslkey: await clientKeyPath() }),
      message:
        /failed: could not read certificate file "\/nonexistent\/client\.crt": No such file or directory$/,
    },
    {
      name: "an sslrootcert that is a directory",
      files: async () => ({ sslrootcert: TLS_FIXTURES.dir }),
      message: /failed: could not read root certificate file ".*tls": Is a directory$/,
    },
    {
      name: "an sslrootcert that holds no certificate",
      files: async () => ({ sslrootcert: TLS_FIXTURES.clientKey }),
      message: /failed: could not read root certificate file ".*client\.key": /,
    },
  ];
  for (const c of fileProblems) {
    test(`${c.name} is a connection error naming the file`, async () => {
      const error = await withFiles(await c.files());
      assert.ok(error instanceof ConnectionError, `expected ConnectionError, got ${String(error)}`);
      assert.match(error.message, c.message);
    });
  }
});

describe("several hosts", () => {
  test("the first host that answers is used, after one that refuses", async () => {
    const conn = await PgConnection.connect(
      resolveConnectionSettings({
        overrides: {
          host: "127.0.0.1,127.0.0.1",
          port: `1,${cluster.port}`,
          user: TEST_USERS.trust.name,
          sslmode: "disable",
        },
        forced: { replication: "true" },
        env: {},
      }),
    );
    assert.equal(conn.target.port, cluster.port);
    await conn.close();
  });
  test("every failure is reported when none answers", async () => {
    const error = await PgConnection.connect(
      resolveConnectionSettings({
        overrides: {
          host: "127.0.0.1,127.0.0.1",
          port: "1,2",
          user: TEST_USERS.trust.name,
          sslmode: "disable",
        },
        forced: { replication: "true" },
        env: {},
      }),
    ).catch((e: unknown) => e);
    assert.ok(error instanceof ConnectionError, String(error));
    assert.match(error.message, /port 1 failed: Connection refused/);
    assert.match(error.message, /port 2 failed: Connection refused/);
  });
});

describe("replication commands", () => {
  const trust = { user: TEST_USERS.trust.name, sslmode: "disable" };

  test("IDENTIFY_SYSTEM agrees with psql", async () => {
    const conn = await connect(trust);
    const identity = await identifySystem(conn);
    await conn.close();
    // The embedded server packages ship no psql: any psql speaks the replication protocol.
    const psql = existsSync(join(cluster.binDir, "psql")) ? join(cluster.binDir, "psql") : "psql";
    const psqlOut = execFileSync(
      psql,
      [
        "-XAtq",
        "-F",
        ",",
        "-h",
        "127.0.0.1",
        "-p",
        String(cluster.port),
        "-U",
        TEST_USERS.trust.name,
        "-d",
        "replication=true",
        "-c",
        "IDENTIFY_SYSTEM",
      ],
      { encoding: "utf8", env: { PATH: process.env.PATH, PGSSLMODE: "disable" } },
    ).trim();
    const [systemId, timeline] = psqlOut.split(",");
    assert.equal(identity.systemId.toString(), systemId);
    assert.equal(identity.timeline, Number(timeline));
  });

  test("a slot can be created (with and without reserving WAL), read and dropped", async () => {
    const conn = await connect(trust);
    try {
      assert.equal(await createPhysicalSlot(conn, "t_plain"), true);
      assert.equal(await createPhysicalSlot(conn, "t_plain", { ifNotExists: true }), false);
      await assert.rejects(
        createPhysicalSlot(conn, "t_plain"),
        (e: unknown) => e instanceof ServerError && e.code === "42710",
      );
      assert.equal(await createPhysicalSlot(conn, "t_reserved", { reserveWal: true }), true);
      if (conn.serverVersionNum >= 150000) {
        const plain = await readReplicationSlot(conn, "t_plain");
        assert.equal(plain?.slotType, "physical");
        assert.equal(plain?.restartLsn, undefined);
        const reserved = await readReplicationSlot(conn, "t_reserved");
        assert.ok(reserved?.restartLsn !== undefined && reserved.restartLsn > 0n);
        assert.equal(reserved?.restartTimeline, 1);
        assert.equal(await readReplicationSlot(conn, "t_missing"), undefined);
      }
      const listed = await cluster.sql(
        "SELECT slot_name || ':' || (restart_lsn IS NOT NULL) FROM pg_replication_slots ORDER BY 1",
      );
      assert.equal(listed, "t_plain:false\nt_reserved:true");
      await dropSlot(conn, "t_plain");
      await dropSlot(conn, "t_reserved", { wait: true });
      assert.equal(await cluster.sql("SELECT count(*) FROM pg_replication_slots"), "0");
      await assert.rejects(
        dropSlot(conn, "t_plain"),
        (e: unknown) => e instanceof ServerError && e.code === "42704",
      );
    } finally {
      await conn.close();
    }
  });

  test("streaming from a slot yields bytes identical to the server's segment", async () => {
    const conn = await connect(trust);
    try {
      await createPhysicalSlot(conn, "t_stream", { reserveWal: true });
      const slotLsn = parseLsn(
        await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 't_stream'"),
      );
      const segmentSize = cluster.walSegmentSize;
      const start = segmentStartOf(slotLsn, segmentSize);
      await cluster.sql(
        "CREATE TABLE IF NOT EXISTS stream_t AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g",
      );
      const segmentName = walFileName(1, segmentNumberOf(start, segmentSize), segmentSize);
      await cluster.sql("SELECT pg_switch_wal()");
      await startReplication(conn, { slot: "t_stream", start, timeline: 1 });
      const received = Buffer.alloc(segmentSize);
      let filled = 0;
      while (filled < segmentSize) {
        const batch = await conn.takeCopyData();
        for (const payload of batch) {
          if (payload[0] !== XLOG_DATA || filled >= segmentSize) continue;
          const msg = parseXLogData(payload);
          assert.equal(msg.start, start + BigInt(filled));
          const take = Math.min(msg.data.length, segmentSize - filled);
          msg.data.copy(received, filled, 0, take);
          filled += take;
        }
      }
      conn.sendCopyDone();
      await conn.finishCopy();
      const onServer = await readFile(cluster.walPath(segmentName));
      assert.equal(onServer.length, segmentSize);
      assert.ok(received.equals(onServer), "streamed segment differs from pg_wal's copy");
      await dropSlot(conn, "t_stream");
    } finally {
      await conn.close();
    }
  });
});

describe("TIMELINE_HISTORY", () => {
  test("returns the history file a promoted standby wrote", async () => {
    const standby = await cluster.createStandby({ name: "connection-standby" });
    try {
      await standby.promote();
      const conn = await PgConnection.connect(
        resolveConnectionSettings({
          overrides: {
            host: "127.0.0.1",
            port: String(standby.port),
            user: TEST_USERS.trust.name,
            sslmode: "disable",
          },
          forced: { replication: "true" },
          env: {},
        }),
      );
      try {
        const identity = await identifySystem(conn);
        assert.equal(identity.timeline, 2);
        const history = await timelineHistory(conn, 2);
        assert.equal(history.fileName, "00000002.history");
        const onDisk = await readFile(standby.walPath("00000002.history"));
        assert.ok(history.content.equals(onDisk));
        assert.match(history.content.toString(), /^1\t[0-9A-F]+\/[0-9A-F]+\t/);
      } finally {
        await conn.close();
      }
    } finally {
      await standby.destroy();
    }
  });
});
