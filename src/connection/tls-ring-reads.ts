import type tls from "node:tls";
import type { ReadRing } from "./read-ring.js";

/**
 * Makes a TLS socket deliver its decrypted bytes into `ring`, the way `net.connect({ onread })`
 * does for a plain socket. Returns false (the socket then stays on 'data' events) when this Node.js
 * does not expose what it needs.
 *
 * Why: PostgreSQL negotiates TLS on an open connection (SSLRequest, then the handshake), so the
 * TLS socket must wrap an existing socket, and `tls.connect` ignores `onread` when given one. On
 * the 'data' path every 16 KiB TLS record becomes a fresh buffer, each ~128 KiB XLogData message
 * is assembled by copying across records, and that garbage inflates the resident set. Node's TLS layer copies each decrypted record into whatever buffer the
 * reading side allocates; with a user buffer installed that is the ring, so records land next to
 * each other, messages are views again, and nothing is allocated per read.
 *
 * How: exactly what `net.Socket`'s constructor does for `onread` — the user-buffer fields of the
 * socket (symbols named kBuffer, kBufferGen, kBufferCb) and `useUserBuffer` on its handle — done
 * before the first read, i.e. right after `tls.connect` returns. Node's pause/resume and its
 * read callback consult those same fields, so backpressure works as for a plain socket.
 */
export function readTlsIntoRing(socket: tls.TLSSocket, ring: ReadRing): boolean {
  const fields = new Map(Object.getOwnPropertySymbols(socket).map((symbol) => [symbol.description, symbol]));
  const kBuffer = fields.get("kBuffer");
  const kBufferGen = fields.get("kBufferGen");
  const kBufferCb = fields.get("kBufferCb");
  const handle = (socket as unknown as { _handle?: { useUserBuffer?: unknown } })._handle;
  if (kBuffer === undefined || kBufferGen === undefined || kBufferCb === undefined) return false;
  if (handle === undefined || typeof handle.useUserBuffer !== "function") return false;
  const record = socket as unknown as Record<symbol, unknown>;
  // Only a socket that has no reader of its own yet: anything else means internals changed.
  if (record[kBuffer] !== null || record[kBufferGen] !== null || record[kBufferCb] !== null) return false;
  const first = ring.onread.buffer();
  record[kBufferGen] = ring.onread.buffer;
  record[kBufferCb] = ring.onread.callback;
  record[kBuffer] = first;
  handle.useUserBuffer.call(handle, first);
  return true;
}
