import net from "node:net";
import tls from "node:tls";
import { ConnectionError } from "../errors.js";
import { sslRequest } from "../protocol/frontend.js";
import type { ConnectionSettings, HostTarget } from "./conninfo.js";
import { describeTarget, effectiveSslMode } from "./conninfo.js";
import { HostNameMismatch } from "./host-name-match.js";
import { ReadRing } from "./read-ring.js";
import type { RingChunk } from "./read-ring-chunk.js";
import { prepareTlsOptions } from "./tls-options.js";
import { readTlsIntoRing } from "./tls-ring-reads.js";

/** A connected byte stream to one server, plain or TLS, before the startup packet. */
export interface Transport {
  socket: net.Socket | tls.TLSSocket;
  /** Present when TLS is in use: the server certificate's DER, for SCRAM channel binding. */
  peerCertificateDer?: Buffer;
  target: HostTarget;
  /** The reused ring reads land in; absent only for a TLS socket this Node.js cannot read into it ('data' events then). */
  readRing?: ReadRing;
}

/** TCP keepalive as libpq enables it by default, so dead peers are noticed on idle streams. */
const KEEPALIVE_DELAY_MS = 30_000;

/** Opens a TCP or unix-domain socket to `target`, failing after `timeoutMs` (0 = no limit). */
export function openSocket(
  target: HostTarget,
  timeoutMs: number | undefined,
  readRing: ReadRing,
): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const onread = readRing.onread;
    const socket =
      target.socketPath !== undefined
        ? net.connect({ path: target.socketPath, onread })
        : net.connect({ host: target.hostaddr ?? target.host, port: target.port, noDelay: true, onread });
    let timer: NodeJS.Timeout | undefined;
    const fail = (error: Error) => {
      if (timer) clearTimeout(timer);
      socket.destroy();
      reject(
        new ConnectionError(`${connectionFailedPrefix(target)}: ${socketErrorText(error, target)}`, {
          cause: error,
        }),
      );
    };
    if (timeoutMs) {
      timer = setTimeout(() => fail(new Error("timeout expired")), timeoutMs);
    }
    socket.once("error", fail);
    socket.once("connect", () => {
      if (timer) clearTimeout(timer);
      socket.off("error", fail);
      if (target.socketPath === undefined) socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
      resolve(socket);
    });
  });
}

/** libpq's wording: `connection to server at "host" (addr), port N failed` / `on socket "…" failed`. */
export function connectionFailedPrefix(target: HostTarget): string {
  if (target.socketPath !== undefined) return `connection to server on socket "${target.socketPath}" failed`;
  const addr = target.hostaddr && target.hostaddr !== target.host ? ` (${target.hostaddr})` : "";
  return `connection to server at "${target.host}"${addr}, port ${target.port} failed`;
}

function socketErrorText(error: Error, target: HostTarget): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case "ECONNREFUSED":
      return target.socketPath !== undefined
        ? "No such file or directory\n\tIs the server running locally and accepting connections on that socket?"
        : "Connection refused\n\tIs the server running on that host and accepting TCP/IP connections?";
    case "ENOENT":
      return "No such file or directory\n\tIs the server running locally and accepting connections on that socket?";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return `could not translate host name "${target.host}" to address: ${error.message}`;
    default:
      return error.message;
  }
}

/**
 * Reads the single-byte answer to SSLRequest from the socket's first read into the ring. Bytes
 * arriving after an 'S' would be unencrypted data spliced into the TLS session (CVE-2021-23222),
 * so they are a hard error. The socket is left paused; anything after an 'N' (or a whole error
 * message) stays in the ring for the connection.
 */
function readSslResponse(socket: net.Socket, ring: ReadRing, target: HostTarget): Promise<"S" | "N"> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      ring.detachSink();
      socket.off("error", onError);
      socket.off("close", onClose);
    };
    const onChunk = (chunk: Buffer, owner: RingChunk) => {
      cleanup();
      socket.pause();
      const answer = String.fromCharCode(chunk[0]!);
      if (answer === "S" && chunk.length > 1) {
        reject(
          new ConnectionError(
            `${connectionFailedPrefix(target)}: received unencrypted data after SSL response`,
          ),
        );
      } else if (answer === "S" || answer === "N") {
        if (chunk.length > 1) ring.giveBack(chunk.subarray(1), owner);
        else ring.discard(owner);
        resolve(answer);
      } else if (answer === "E") {
        // Pre-7.0-style servers and some poolers answer with an error: libpq treats it as "no SSL".
        ring.giveBack(chunk, owner);
        resolve("N");
      } else {
        reject(
          new ConnectionError(
            `${connectionFailedPrefix(target)}: received invalid response to SSL negotiation: ${answer}`,
          ),
        );
      }
    };
    const onError = (error: Error) => {
      cleanup();
      reject(new ConnectionError(`${connectionFailedPrefix(target)}: ${error.message}`, { cause: error }));
    };
    const onClose = () => {
      cleanup();
      reject(
        new ConnectionError(`${connectionFailedPrefix(target)}: server closed the connection unexpectedly`),
      );
    };
    ring.setSink(onChunk);
    socket.on("error", onError);
    socket.on("close", onClose);
    socket.write(sslRequest());
  });
}

/**
 * Connects to one target and negotiates TLS as `sslmode` says. Returns a transport ready for the
 * startup packet. `useTls` forces the decision for the second attempt of allow/prefer.
 */
export async function openTransport(
  settings: ConnectionSettings,
  target: HostTarget,
  useTls: boolean,
): Promise<Transport> {
  // Every socket reads into the ring from its first byte: `onread` can only be given at creation,
  // and a socket opened for a possible TLS handshake usually stays plaintext (prefer/allow + 'N').
  const readRing = new ReadRing();
  const startedAt = Date.now();
  const socket = await openSocket(target, settings.connectTimeoutMs, readRing);
  if (!useTls || target.socketPath !== undefined) return { socket, target, readRing };
  const timeoutMs = settings.connectTimeoutMs;
  // connect_timeout bounds the whole attempt, the SSL negotiation included (as in libpq).
  let timedOut = false;
  const timer =
    timeoutMs === undefined
      ? undefined
      : setTimeout(
          () => {
            timedOut = true;
            socket.destroy();
          },
          Math.max(0, timeoutMs - (Date.now() - startedAt)),
        );
  try {
    return await negotiateTls(settings, target, socket, readRing);
  } catch (error) {
    if (timedOut)
      throw new ConnectionError(`${connectionFailedPrefix(target)}: timeout expired`, { cause: error });
    throw error;
  } finally {
    if (timer) clearTimeout(timer);
  }
}

async function negotiateTls(
  settings: ConnectionSettings,
  target: HostTarget,
  socket: net.Socket,
  readRing: ReadRing,
): Promise<Transport> {
  const mode = effectiveSslMode(settings);
  try {
    const answer = await readSslResponse(socket, readRing, target);
    if (answer === "N") {
      if (mode === "require" || mode === "verify-ca" || mode === "verify-full") {
        throw new ConnectionError(
          `${connectionFailedPrefix(target)}: server does not support SSL, but SSL was required`,
        );
      }
      return { socket, target, readRing };
    }
    const { secure, ringReads } = await upgradeToTls(
      socket,
      prepareTlsOptions(settings, mode, target, connectionFailedPrefix(target)),
      target,
      readRing,
    );
    return {
      socket: secure,
      target,
      peerCertificateDer: secure.getPeerCertificate().raw,
      readRing: ringReads ? readRing : undefined,
    };
  } catch (error) {
    socket.destroy();
    throw error;
  }
}

function upgradeToTls(
  socket: net.Socket,
  options: tls.ConnectionOptions,
  target: HostTarget,
  readRing: ReadRing,
): Promise<{ secure: tls.TLSSocket; ringReads: boolean }> {
  return new Promise((resolve, reject) => {
    const secure = tls.connect({ ...options, socket });
    // The TLS layer now reads the raw socket itself; its decrypted bytes go to the same ring.
    const ringReads = readTlsIntoRing(secure, readRing);
    const onError = (error: Error) => {
      secure.destroy();
      // A host name mismatch already has libpq's wording; it is not an OpenSSL error.
      const text = error instanceof HostNameMismatch ? error.message : `SSL error: ${tlsErrorText(error)}`;
      reject(new ConnectionError(`${connectionFailedPrefix(target)}: ${text}`, { cause: error }));
    };
    secure.once("error", onError);
    secure.once("secureConnect", () => {
      secure.off("error", onError);
      resolve({ secure, ringReads });
    });
  });
}

function tlsErrorText(error: Error): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID")
    return `server certificate does not match host name: ${error.message}`;
  if (
    code === "UNABLE_TO_VERIFY_LEAF_SIGNATURE" ||
    code === "SELF_SIGNED_CERT_IN_CHAIN" ||
    code === "DEPTH_ZERO_SELF_SIGNED_CERT"
  ) {
    return `certificate verify failed: ${error.message}`;
  }
  return error.message;
}

export { describeTarget };
