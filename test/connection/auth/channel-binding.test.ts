import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, X509Certificate } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import {
  serverEndPointHashName,
  tlsServerEndPointHash,
} from "../../../src/connection/auth/channel-binding.js";
import { AuthenticationError } from "../../../src/errors.js";

let dir = "";

function openssl(...args: string[]): void {
  execFileSync("openssl", args, { stdio: ["ignore", "ignore", "pipe"] });
}

function key(name: string, ...genpkey: string[]): string {
  const path = join(dir, `${name}.key`);
  openssl("genpkey", ...genpkey, "-out", path);
  return path;
}

/** A self-signed certificate (DER) signed with `keyPath` and the given req options. */
function certificate(name: string, keyPath: string, ...options: string[]): Buffer {
  const path = join(dir, `${name}.crt`);
  openssl("req", "-x509", "-key", keyPath, "-subj", `/CN=${name}`, "-days", "1", "-out", path, ...options);
  return Buffer.from(new X509Certificate(readFileSync(path)).raw);
}

const certs: Record<string, Buffer> = {};

before(() => {
  dir = mkdtempSync(join(tmpdir(), "pgwal-cb-"));
  const rsa = key("rsa", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048");
  const p256 = key("p256", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256");
  const p384 = key("p384", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-384");
  const ed25519 = key("ed25519", "-algorithm", "ED25519");
  certs.rsaSha256 = certificate("rsa-sha256", rsa, "-sha256");
  certs.rsaSha224 = certificate("rsa-sha224", rsa, "-sha224");
  certs.rsaSha384 = certificate("rsa-sha384", rsa, "-sha384");
  certs.rsaSha512 = certificate("rsa-sha512", rsa, "-sha512");
  certs.rsaSha1 = certificate("rsa-sha1", rsa, "-sha1");
  certs.ecSha256 = certificate("ec-sha256", p256, "-sha256");
  certs.ecSha384 = certificate("ec-sha384", p384, "-sha384");
  certs.ecSha512 = certificate("ec-sha512", p256, "-sha512");
  certs.ecSha1 = certificate("ec-sha1", p256, "-sha1");
  const pss = ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"];
  certs.pssSha384 = certificate("pss-sha384", rsa, "-sha384", ...pss);
  certs.pssSha512 = certificate("pss-sha512", rsa, "-sha512", ...pss);
  certs.pssSha1 = certificate(
    "pss-sha1",
    rsa,
    "-sha1",
    "-sigopt",
    "rsa_padding_mode:pss",
    "-sigopt",
    "rsa_pss_saltlen:20",
  );
  certs.ed25519 = certificate("ed25519", ed25519);
});

after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const expectations: [string, string][] = [
  ["rsaSha256", "sha256"],
  ["rsaSha224", "sha224"],
  ["rsaSha384", "sha384"],
  ["rsaSha512", "sha512"],
  ["rsaSha1", "sha256"], // SHA-1 is upgraded to SHA-256 (RFC 5929 §4.1)
  ["ecSha256", "sha256"],
  ["ecSha384", "sha384"],
  ["ecSha512", "sha512"],
  ["ecSha1", "sha256"],
  ["pssSha384", "sha384"],
  ["pssSha512", "sha512"],
  ["pssSha1", "sha256"],
];

for (const [name, hash] of expectations) {
  test(`tls-server-end-point hash of a ${name} certificate uses ${hash}`, () => {
    const der = certs[name]!;
    assert.equal(serverEndPointHashName(der), hash);
    assert.deepEqual(tlsServerEndPointHash(der), createHash(hash).update(der).digest());
  });
}

test("Ed25519 certificates have no hash for tls-server-end-point: AuthenticationError", () => {
  assert.throws(() => tlsServerEndPointHash(certs.ed25519!), AuthenticationError);
});

test("malformed DER is an AuthenticationError, not a crash", () => {
  const der = certs.rsaSha256!;
  for (const broken of [
    Buffer.alloc(0),
    der.subarray(0, 40),
    Buffer.from([0x04, 0x01, 0x00]),
    Buffer.from([0x30, 0x84]),
  ]) {
    assert.throws(() => tlsServerEndPointHash(broken), AuthenticationError);
  }
});

/** Digest named by `openssl x509 -text` for a certificate, per RFC 5929 (MD5/SHA-1 → SHA-256). */
function opensslDigest(pemPath: string): string {
  const textForm = execFileSync("openssl", ["x509", "-in", pemPath, "-noout", "-text"], { encoding: "utf8" });
  const algorithm = /Signature Algorithm: (\S+)/.exec(textForm)?.[1] ?? "";
  const hash = /Hash Algorithm: (\S+)/.exec(textForm)?.[1];
  const named =
    algorithm === "rsassaPss" ? (hash ?? "sha1") : /(sha\d+|md5)/i.exec(algorithm)?.[1]?.toLowerCase();
  return named === "sha1" || named === "md5" ? "sha256" : (named ?? "unknown");
}

test("the shared test certificates in fixtures/tls (when present) hash as openssl describes them", (t) => {
  let root = fileURLToPath(new URL(".", import.meta.url));
  while (!existsSync(join(root, "fixtures", "tls")) && root !== "/") root = join(root, "..");
  const fixtures = join(root, "fixtures", "tls");
  const pems = ["server.crt", "ca.crt", "client.crt"].map((name) => join(fixtures, name)).filter(existsSync);
  if (pems.length === 0) {
    t.skip("fixtures/tls has no certificates yet");
    return;
  }
  for (const pem of pems) {
    const der = Buffer.from(new X509Certificate(readFileSync(pem)).raw);
    const hash = opensslDigest(pem);
    assert.deepEqual(tlsServerEndPointHash(der), createHash(hash).update(der).digest(), pem);
  }
});
