/** Paths of the TLS test certificates in fixtures/tls (see fixtures/tls/regenerate.sh). */
import { existsSync, rmSync } from "node:fs";
import { chmod, copyFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

/** The repository root: the nearest folder above this file holding fixtures/tls (works from dist/ too). */
function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, "fixtures", "tls", "ca.crt"))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("fixtures/tls not found above the test support folder");
    dir = parent;
  }
}

const dir = join(findRepoRoot(), "fixtures", "tls");

export const TLS_FIXTURES = {
  dir,
  /** CA that signed serverCert and clientCert. */
  caCert: join(dir, "ca.crt"),
  /** Valid for DNS name "localhost" only: verify-full must fail for host=127.0.0.1. */
  serverCert: join(dir, "server.crt"),
  /** Mode is whatever git left: PostgreSQL gets a 0600 copy from the harness. */
  serverKey: join(dir, "server.key"),
  /** CN=repl_cert, for the hba "cert" line. */
  clientCert: join(dir, "client.crt"),
  /** Mode is whatever git left: use clientKeyPath() for a 0600 copy that libpq accepts. */
  clientKey: join(dir, "client.key"),
  /** A CA that signed nothing here: verify-ca against it must fail. */
  otherCaCert: join(dir, "other-ca.crt"),
} as const;

let clientKeyCopy: Promise<string> | undefined;

/** A 0600 copy of the client key (git does not keep file modes; libpq refuses group/world-readable keys). */
export function clientKeyPath(): Promise<string> {
  clientKeyCopy ??= (async () => {
    const copyDir = await mkdtemp(join(tmpdir(), "pgwal-client-key-"));
    process.once("exit", () => rmSync(copyDir, { recursive: true, force: true }));
    const path = join(copyDir, "client.key");
    await copyFile(TLS_FIXTURES.clientKey, path);
    await chmod(path, 0o600);
    return path;
  })();
  return clientKeyCopy;
}
