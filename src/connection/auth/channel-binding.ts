/**
 * Channel binding data for SCRAM-SHA-256-PLUS, type "tls-server-end-point" (RFC 5929 §4.1): the hash
 * of the server's DER certificate, with the hash function of the certificate's signature algorithm,
 * MD5 and SHA-1 replaced by SHA-256. For RSASSA-PSS the hash named in the PSS parameters is used, as
 * PostgreSQL (with OpenSSL's X509_get_signature_info) does on both ends.
 *
 * Only the outer `signatureAlgorithm` of the certificate is read, with a minimal DER reader: the
 * server computes the same hash from the same field, so nothing else matters here.
 */
import { createHash } from "node:crypto";
import { AuthenticationError } from "../../errors.js";

const TAG_SEQUENCE = 0x30;
const TAG_OID = 0x06;
/** [0] EXPLICIT, constructed: hashAlgorithm inside RSASSA-PSS-params. */
const TAG_CONTEXT_0 = 0xa0;

interface DerElement {
  tag: number;
  /** Content bytes (without tag and length). */
  content: Buffer;
  /** Offset just past this element in the buffer it was read from. */
  end: number;
}

function malformed(what: string): AuthenticationError {
  return new AuthenticationError(`could not read the server certificate for channel binding: ${what}`);
}

/** Reads one DER element (definite length only, as DER requires) at `offset`. */
function readElement(buffer: Buffer, offset: number): DerElement {
  if (offset + 2 > buffer.length) throw malformed("truncated element");
  const tag = buffer[offset]!;
  if ((tag & 0x1f) === 0x1f) throw malformed("multi-byte tags are not expected here");
  let length = buffer[offset + 1]!;
  let position = offset + 2;
  if (length & 0x80) {
    const lengthBytes = length & 0x7f;
    if (lengthBytes === 0 || lengthBytes > 4) throw malformed("unsupported length encoding");
    if (position + lengthBytes > buffer.length) throw malformed("truncated length");
    length = 0;
    for (let i = 0; i < lengthBytes; i++) length = length * 256 + buffer[position + i]!;
    position += lengthBytes;
  }
  const end = position + length;
  if (end > buffer.length) throw malformed("element runs past the end of its container");
  return { tag, content: buffer.subarray(position, end), end };
}

function expectTag(element: DerElement, tag: number, what: string): DerElement {
  if (element.tag !== tag) throw malformed(`expected ${what}`);
  return element;
}

/** Dotted text of an OBJECT IDENTIFIER's content bytes. */
function decodeOid(content: Buffer): string {
  if (content.length === 0) throw malformed("empty object identifier");
  const arcs: number[] = [];
  let value = 0;
  for (const byte of content) {
    value = value * 128 + (byte & 0x7f);
    if (value > Number.MAX_SAFE_INTEGER) throw malformed("object identifier arc too large");
    if (!(byte & 0x80)) {
      arcs.push(value);
      value = 0;
    }
  }
  if (content[content.length - 1]! & 0x80) throw malformed("truncated object identifier");
  const first = arcs[0]!;
  const head = first < 80 ? [Math.floor(first / 40), first % 40] : [2, first - 80];
  return [...head, ...arcs.slice(1)].join(".");
}

/** Hash OIDs (as used inside RSASSA-PSS parameters) → node:crypto names. */
const HASH_BY_OID: Record<string, string> = {
  "1.2.840.113549.2.5": "md5",
  "1.3.14.3.2.26": "sha1",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.5": "sha512-224",
  "2.16.840.1.101.3.4.2.6": "sha512-256",
  "2.16.840.1.101.3.4.2.7": "sha3-224",
  "2.16.840.1.101.3.4.2.8": "sha3-256",
  "2.16.840.1.101.3.4.2.9": "sha3-384",
  "2.16.840.1.101.3.4.2.10": "sha3-512",
};

/** Signature algorithm OIDs → the hash they sign with. */
const HASH_BY_SIGNATURE_OID: Record<string, string> = {
  // PKCS #1 v1.5 RSA
  "1.2.840.113549.1.1.4": "md5",
  "1.2.840.113549.1.1.5": "sha1",
  "1.2.840.113549.1.1.11": "sha256",
  "1.2.840.113549.1.1.12": "sha384",
  "1.2.840.113549.1.1.13": "sha512",
  "1.2.840.113549.1.1.14": "sha224",
  "1.2.840.113549.1.1.15": "sha512-224",
  "1.2.840.113549.1.1.16": "sha512-256",
  "2.16.840.1.101.3.4.3.13": "sha3-224",
  "2.16.840.1.101.3.4.3.14": "sha3-256",
  "2.16.840.1.101.3.4.3.15": "sha3-384",
  "2.16.840.1.101.3.4.3.16": "sha3-512",
  // ECDSA
  "1.2.840.10045.4.1": "sha1",
  "1.2.840.10045.4.3.1": "sha224",
  "1.2.840.10045.4.3.2": "sha256",
  "1.2.840.10045.4.3.3": "sha384",
  "1.2.840.10045.4.3.4": "sha512",
  "2.16.840.1.101.3.4.3.9": "sha3-224",
  "2.16.840.1.101.3.4.3.10": "sha3-256",
  "2.16.840.1.101.3.4.3.11": "sha3-384",
  "2.16.840.1.101.3.4.3.12": "sha3-512",
  // DSA
  "1.2.840.10040.4.3": "sha1",
  "2.16.840.1.101.3.4.3.1": "sha224",
  "2.16.840.1.101.3.4.3.2": "sha256",
};

const RSASSA_PSS_OID = "1.2.840.113549.1.1.10";

/** The hash of RSASSA-PSS-params: [0] hashAlgorithm, SHA-1 when absent (RFC 4055). */
function pssHash(parameters: Buffer | undefined): string {
  if (!parameters) return "sha1";
  let offset = 0;
  while (offset < parameters.length) {
    const field = readElement(parameters, offset);
    offset = field.end;
    if (field.tag !== TAG_CONTEXT_0) continue;
    const algorithm = expectTag(readElement(field.content, 0), TAG_SEQUENCE, "hash AlgorithmIdentifier");
    const oid = decodeOid(expectTag(readElement(algorithm.content, 0), TAG_OID, "hash OID").content);
    const hash = HASH_BY_OID[oid];
    if (!hash) throw unsupported(`RSASSA-PSS with hash ${oid}`);
    return hash;
  }
  return "sha1";
}

function unsupported(algorithm: string): AuthenticationError {
  return new AuthenticationError(
    `channel binding is not possible: unsupported server certificate signature algorithm ${algorithm}`,
  );
}

/** The signatureAlgorithm of an X.509 certificate: its OID and the DER of its parameters, if any. */
function readSignatureAlgorithm(certDer: Buffer): { oid: string; parameters?: Buffer } {
  const certificate = expectTag(readElement(certDer, 0), TAG_SEQUENCE, "Certificate SEQUENCE");
  const tbs = expectTag(readElement(certificate.content, 0), TAG_SEQUENCE, "TBSCertificate SEQUENCE");
  const algorithm = expectTag(
    readElement(certificate.content, tbs.end),
    TAG_SEQUENCE,
    "signatureAlgorithm SEQUENCE",
  );
  const oidElement = expectTag(readElement(algorithm.content, 0), TAG_OID, "signature algorithm OID");
  const oid = decodeOid(oidElement.content);
  if (oidElement.end >= algorithm.content.length) return { oid };
  const parameters = readElement(algorithm.content, oidElement.end);
  // RSASSA-PSS-params is a SEQUENCE; anything else (NULL for PKCS #1 v1.5) carries no hash.
  return parameters.tag === TAG_SEQUENCE ? { oid, parameters: parameters.content } : { oid };
}

/** The hash function tls-server-end-point uses for this certificate (node:crypto name). */
export function serverEndPointHashName(certDer: Buffer): string {
  const { oid, parameters } = readSignatureAlgorithm(certDer);
  const signed = oid === RSASSA_PSS_OID ? pssHash(parameters) : HASH_BY_SIGNATURE_OID[oid];
  if (!signed) throw unsupported(oid);
  return signed === "md5" || signed === "sha1" ? "sha256" : signed;
}

/** RFC 5929 tls-server-end-point channel binding data for the server certificate `certDer`. */
export function tlsServerEndPointHash(certDer: Buffer): Buffer {
  return createHash(serverEndPointHashName(certDer)).update(certDer).digest();
}
