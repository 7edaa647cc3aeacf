/**
 * The TLS options for one connection attempt, from the libpq settings: root certificate, client
 * certificate and key, and the verify-full host name check. Files are checked as libpq checks them
 * (fe-secure-openssl.c), so every problem is a ConnectionError that names the file, never a raw
 * file-system or OpenSSL exception.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFileSync, statSync } from "node:fs";
import net from "node:net";
import tls from "node:tls";
import { ConnectionError } from "../errors.js";
import type { ConnectionSettings, HostTarget, SslMode } from "./conninfo.js";
import { checkPeerName } from "./host-name-match.js";

const DEFAULT_ROOT_CERT = "~/.postgresql/root.crt";
const DEFAULT_KEY = "~/.postgresql/postgresql.key";

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "No such file or directory";
  if (code === "EACCES") return "Permission denied";
  if (code === "EISDIR") return "Is a directory";
  return error instanceof Error ? error.message : String(error);
}

function readOrFail(path: string, fail: (message: string) => never, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (error) {
    return fail(`could not read ${what} "${path}": ${reason(error)}`);
  }
}

/**
 * The client key, checked like libpq: it must exist, be a regular file, be private to its owner
 * (0600 or less; a root-owned key may be 0640 for group access), and parse.
 */
function readClientKey(path: string | undefined, fail: (message: string) => never): Buffer {
  if (path === undefined) return fail(`certificate present, but not private key file "${DEFAULT_KEY}"`);
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR")
      return fail(`certificate present, but not private key file "${path}"`);
    return fail(`could not stat private key file "${path}": ${reason(error)}`);
  }
  if (!stat.isFile()) return fail(`private key file "${path}" is not a regular file`);
  const tooOpen = stat.uid === 0 ? stat.mode & 0o037 : stat.mode & 0o077;
  if (tooOpen !== 0) {
    return fail(
      `private key file "${path}" has group or world access; file must have permissions u=rw (0600) or less if owned by the current user, or permissions u=rw,g=r (0640) or less if owned by root`,
    );
  }
  const key = readOrFail(path, fail, "private key file");
  try {
    createPrivateKey(key);
  } catch (error) {
    return fail(`could not load private key file "${path}": ${reason(error)}`);
  }
  return key;
}

function readClientCertificate(path: string, fail: (message: string) => never): Buffer {
  const cert = readOrFail(path, fail, "certificate file");
  try {
    new X509Certificate(cert);
  } catch (error) {
    return fail(`could not read certificate file "${path}": ${reason(error)}`);
  }
  return cert;
}

function readRootCertificates(path: string, fail: (message: string) => never): Buffer {
  const ca = readOrFail(path, fail, "root certificate file");
  try {
    // Node ignores text that is not a certificate: insist on at least one, as OpenSSL does.
    new X509Certificate(ca);
  } catch (error) {
    return fail(`could not read root certificate file "${path}": ${reason(error)}`);
  }
  return ca;
}

/**
 * The TLS verification and client identity `sslmode` and the ssl* settings ask for. Problems are
 * ConnectionErrors starting with `failurePrefix` (libpq's "connection to server … failed").
 */
export function prepareTlsOptions(
  settings: ConnectionSettings,
  mode: SslMode,
  target: HostTarget,
  failurePrefix: string,
): tls.ConnectionOptions {
  const fail = (message: string): never => {
    throw new ConnectionError(`${failurePrefix}: ${message}`);
  };
  const options: tls.ConnectionOptions = {};
  const verify = mode === "verify-ca" || mode === "verify-full";
  if (verify) {
    const root = settings.sslrootcert;
    if (root === "system") {
      // Node's bundled and system CAs: leave `ca` unset.
    } else if (root === undefined || !pathExists(root)) {
      fail(
        `root certificate file "${root ?? DEFAULT_ROOT_CERT}" does not exist\n` +
          "Either provide the file, use the system's trusted roots with sslrootcert=system, or change sslmode to disable server certificate verification.",
      );
    } else {
      options.ca = readRootCertificates(root, fail);
    }
  }
  options.rejectUnauthorized = verify;
  // Host name checks only for verify-full, against the host name (not hostaddr), like libpq.
  options.checkServerIdentity =
    mode === "verify-full"
      ? (_host, cert) =>
          checkPeerName(target.host, {
            subjectAltName: cert.subjectaltname,
            commonName: firstCommonName(cert.subject?.CN),
          })
      : () => undefined;
  if (settings.sslcert !== undefined) {
    // Only set when given, or when ~/.postgresql/postgresql.crt exists: a given file that is
    // missing is an error rather than a quiet fall back to no client certificate.
    options.cert = readClientCertificate(settings.sslcert, fail);
    options.key = readClientKey(settings.sslkey, fail);
    try {
      tls.createSecureContext({ cert: options.cert, key: options.key });
    } catch (error) {
      fail(`could not load private key file "${settings.sslkey}": ${reason(error)}`);
    }
  }
  if (settings.sslsni && net.isIP(target.host) === 0) options.servername = target.host;
  return options;
}

function pathExists(path: string): boolean {
  try {
    statSync(path);
    return true;
  } catch {
    return false;
  }
}

function firstCommonName(cn: string | string[] | undefined): string | undefined {
  return Array.isArray(cn) ? cn[0] : cn;
}
