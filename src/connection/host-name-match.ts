/**
 * verify-full's host name check, as libpq does it (fe-secure-common.c and fe-secure-openssl.c), not
 * as Node's tls.checkServerIdentity does: a wildcard is only a whole left-most label ("*.example.test"
 * matches "db.example.test", never "a.db.example.test"), and partial wildcards such as
 * "f*.example.test" match nothing. Subject alternative names of the host's kind (DNS name or IP
 * address) rule out the Common Name; names with an embedded NUL are refused.
 */

/**
 * verify-full's host name check, as libpq does it (fe-secure-common.c and fe-secure-openssl.c), not
 * as Node's tls.checkServerIdentity does: a wildcard is only a whole left-most label ("*.example.test"
 * matches "db.example.test", never "a.db.example.test"), and partial wildcards such as
 * "f*.example.test" match nothing. Subject alternative names of the host's kind (DNS name or IP
 * address) rule out the Common Name; names with an embedded NUL are refused.
 */
import net, { isIP } from "node:net";
import { escapeControlCharacters } from "../protocol/untrusted-text.js";

/** What a certificate says about the names it is valid for. */
export interface CertificateNames {
  /** Node's `subjectaltname` string: `DNS:a, IP Address:127.0.0.1`, values JSON-quoted when unusual. */
  subjectAltName?: string;
  /** The subject's first Common Name. */
  commonName?: string;
}

/** The certificate is not valid for the host: a connection failure with libpq's wording. */
export class HostNameMismatch extends Error {}

interface AltName {
  kind: "DNS" | "IP";
  value: string;
}

/** Splits Node's subjectaltname string into entries; values that Node quoted are JSON strings. */
export function parseSubjectAltName(text: string): AltName[] {
  const names: AltName[] = [];
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(":", i);
    if (colon < 0) break;
    const kind = text.slice(i, colon);
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      // JSON string: find its closing quote (skipping escapes).
      let end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === "\\" ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      next = text.indexOf(", ", end);
    } else {
      next = text.indexOf(", ", colon);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    if (kind === "DNS") names.push({ kind: "DNS", value });
    else if (kind === "IP Address") names.push({ kind: "IP", value });
    if (next < 0) break;
    i = next + 2;
  }
  return names;
}

/** ASCII-only case folding, as pg_strcasecmp. */
function foldCase(text: string): string {
  return text.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/** libpq's wildcard_certificate_match: "*." + suffix, and the "*" stands for exactly one label. */
export function wildcardCertificateMatch(pattern: string, host: string): boolean {
  if (pattern.length < 3 || pattern[0] !== "*" || pattern[1] !== ".") return false;
  if (pattern.length > host.length) return false;
  const suffixStart = host.length - pattern.length + 1;
  if (foldCase(pattern.slice(1)) !== foldCase(host.slice(suffixStart))) return false;
  // A dot before where the suffix matched means the wildcard would cover more than one label.
  return host.indexOf(".") >= suffixStart;
}

/** One certificate name (SAN dNSName or CN) against the host, as libpq. */
export function certificateNameMatches(name: string, host: string): boolean {
  if (name.includes("\0")) throw new HostNameMismatch("SSL certificate's name contains embedded null");
  return foldCase(name) === foldCase(host) || wildcardCertificateMatch(name, host);
}

function sameAddress(certificateIp: string, host: string): boolean {
  const family = isIP(certificateIp);
  if (family === 0 || family !== isIP(host)) return false;
  const list = new net.BlockList();
  list.addAddress(certificateIp, family === 4 ? "ipv4" : "ipv6");
  return list.check(host, family === 4 ? "ipv4" : "ipv6");
}

/**
 * Undefined when the certificate is valid for `host`, else the error libpq would report:
 * `server certificate for "NAME" (and N other names) does not match host name "HOST"`.
 */
export function checkPeerName(host: string, names: CertificateNames): HostNameMismatch | undefined {
  if (host === "") return new HostNameMismatch("host name must be specified for a verified SSL connection");
  const hostIsIp = isIP(host) !== 0;
  let examined = 0;
  let firstName: string | undefined;
  let checkCommonName = true;
  try {
    for (const name of parseSubjectAltName(names.subjectAltName ?? "")) {
      if ((name.kind === "IP") === hostIsIp) checkCommonName = false;
      examined++;
      firstName ??= name.value;
      const matched =
        name.kind === "DNS" ? certificateNameMatches(name.value, host) : sameAddress(name.value, host);
      if (matched) return undefined;
    }
    if (checkCommonName && names.commonName !== undefined) {
      examined++;
      firstName ??= names.commonName;
      if (certificateNameMatches(names.commonName, host)) return undefined;
    }
  } catch (error) {
    if (error instanceof HostNameMismatch) return error;
    throw error;
  }
  if (firstName === undefined)
    return new HostNameMismatch("could not get server's host name from server certificate");
  const shown = escapeControlCharacters(firstName);
  const others = examined > 1 ? ` (and ${examined - 1} other name${examined - 1 === 1 ? "" : "s"})` : "";
  return new HostNameMismatch(
    `server certificate for "${shown}"${others} does not match host name "${escapeControlCharacters(host)}"`,
  );
}
