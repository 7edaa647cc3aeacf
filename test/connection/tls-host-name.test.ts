/**
 * verify-full's host name check follows libpq, not Node: a wildcard only as the whole left-most
 * label. A real server cannot be given a throwaway certificate by the shared harness, so a small TLS
 * endpoint here answers 'S' to SSLRequest and presents a certificate made with openssl for the test,
 * signed by the fixtures' CA.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import tls from "node:tls";
import { PgConnection } from "../../src/connection/connection.js";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { ConnectionError } from "../../src/errors.js";
import { TLS_FIXTURES } from "../support/tls-fixtures.js";

let dir = "";
before(() => {
  dir = mkdtempSync(join(tmpdir(), "pgwal-tls-names-"));
});
after(() => rmSync(dir, { recursive: true, force: true }));

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

/** A server certificate for `san` (e.g. "DNS:f*.example.test"), signed by the fixtures' CA. */
function serverCertificate(name: string, san: string): { cert: Buffer; key: Buffer } {
  const key = join(dir, `${name}.key`);
  const cert = join(dir, `${name}.crt`);
  openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key);
  openssl(
    "req",
    "-x509",
    "-key",
    key,
    "-subj",
    `/CN=${name}`,
    "-days",
    "1",
    "-out",
    cert,
    "-CA",
    TLS_FIXTURES.caCert,
    "-CAkey",
    join(TLS_FIXTURES.dir, "ca.key"),
    "-addext",
    `subjectAltName=${san}`,
    "-addext",
    "basicConstraints=critical,CA:FALSE",
  );
  return { cert: readFileSync(cert), key: readFileSync(key) };
}

/** Answers SSLRequest with 'S', completes TLS with `identity`, then closes. Resolves to its port. */
async function tlsEndpoint(identity: {
  cert: Buffer;
  key: Buffer;
}): Promise<{ port: number; close: () => void }> {
  const context = tls.createSecureContext(identity);
  const server = net.createServer((socket) => {
    socket.once("data", () => {
      socket.write("S");
      const secure = new tls.TLSSocket(socket, { isServer: true, secureContext: context });
      secure.on("error", () => socket.destroy());
      secure.on("secure", () => secure.end());
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { port: (server.address() as net.AddressInfo).port, close: () => server.close() };
}

async function verifyFull(port: number, host: string): Promise<unknown> {
  const settings = resolveConnectionSettings({
    overrides: {
      host,
      hostaddr: "127.0.0.1",
      port: String(port),
      user: "x",
      sslmode: "verify-full",
      sslrootcert: TLS_FIXTURES.caCert,
    },
    env: {},
    homeDir: "/nonexistent",
  });
  return PgConnection.connect(settings).then(
    (conn) => {
      conn.destroy();
      return undefined;
    },
    (error: unknown) => error,
  );
}

describe("verify-full against a certificate made for the test", () => {
  test("a partial wildcard (f*.example.test) does not match foo.example.test", async () => {
    const endpoint = await tlsEndpoint(serverCertificate("partial", "DNS:f*.example.test"));
    try {
      const error = await verifyFull(endpoint.port, "foo.example.test");
      assert.ok(error instanceof ConnectionError, String(error));
      assert.equal(
        error.message,
        `connection to server at "foo.example.test" (127.0.0.1), port ${endpoint.port} failed: server certificate for "f*.example.test" does not match host name "foo.example.test"`,
      );
    } finally {
      endpoint.close();
    }
  });

  test("a whole-label wildcard matches one label only", async () => {
    const endpoint = await tlsEndpoint(serverCertificate("whole", "DNS:*.example.test,DNS:other.test"));
    try {
      // One label: the certificate is accepted (the endpoint then hangs up, which is a different failure).
      const accepted = await verifyFull(endpoint.port, "db.example.test");
      assert.ok(accepted instanceof ConnectionError, String(accepted));
      assert.doesNotMatch(accepted.message, /does not match host name/);
      const deeper = await verifyFull(endpoint.port, "a.db.example.test");
      assert.ok(deeper instanceof ConnectionError, String(deeper));
      assert.match(
        deeper.message,
        /failed: server certificate for "\*\.example\.test" \(and 1 other name\) does not match host name "a\.db\.example\.test"$/,
      );
    } finally {
      endpoint.close();
    }
  });
});
