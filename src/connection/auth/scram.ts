/**
 * Client side of SCRAM-SHA-256 and SCRAM-SHA-256-PLUS (RFC 5802, RFC 7677) as PostgreSQL speaks it:
 * the user name in the SCRAM messages is empty (the server takes it from the startup packet), the
 * password goes through SASLprep with PostgreSQL's raw-password fallback, and the only channel binding
 * type is tls-server-end-point.
 *
 * Pure: no sockets. The connection feeds in the bytes of AuthenticationSASLContinue/Final and sends
 * back what this returns.
 *
 * The key derivation runs on the thread pool (async pbkdf2): the server chooses the iteration count, and
 * a huge one must not freeze the event loop, where connect_timeout's timer runs.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from "node:crypto";
import { promisify } from "node:util";
import { AuthenticationError } from "../../errors.js";
import { escapeControlCharacters } from "../../protocol/untrusted-text.js";
import type { ChannelBindingMode } from "../conninfo.js";
import { saslprepOrRaw } from "./saslprep.js";

export interface ChannelBinding {
  type: "tls-server-end-point";
  /** tlsServerEndPointHash() of the server certificate. */
  data: Buffer;
}

export type ScramMechanism = "SCRAM-SHA-256" | "SCRAM-SHA-256-PLUS";

const KEY_LENGTH = 32;
const pbkdf2Async = promisify(pbkdf2);
/** Raw bytes of our nonce before base64, as libpq (24 printable characters on the wire). */
const NONCE_BYTES = 18;
const STRICT_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** Printable ASCII except ',' (RFC 5802 "printable"). */
const NONCE_CHARS = /^[\x21-\x2b\x2d-\x7e]+$/;

function hmac(key: Buffer, data: Buffer | string): Buffer {
  return createHmac("sha256", key).update(data).digest();
}

function malformed(detail: string): AuthenticationError {
  return new AuthenticationError(`malformed SCRAM message (${detail})`);
}

/** Escapes a SCRAM saslname (RFC 5802 §5.1): "=" → "=3D", "," → "=2C". */
function escapeSaslName(name: string): string {
  return name.replace(/=/g, "=3D").replace(/,/g, "=2C");
}

/** Splits "a=1,b=2" into its attributes, checking they come in `expected` order and nothing follows. */
function readAttributes(message: string, expected: string[], messageName: string): string[] {
  const values: string[] = [];
  let rest = message;
  for (const attribute of expected) {
    if (rest[0] !== attribute) throw malformed(`attribute "${attribute}" expected`);
    if (rest[1] !== "=") throw malformed(`expected character "=" for attribute "${attribute}"`);
    const comma = rest.indexOf(",");
    values.push(comma < 0 ? rest.slice(2) : rest.slice(2, comma));
    rest = comma < 0 ? "" : rest.slice(comma + 1);
  }
  if (rest !== "") throw malformed(`garbage at end of ${messageName}`);
  return values;
}

function decodeText(data: Buffer): string {
  if (data.length === 0) throw malformed("empty message");
  if (data.includes(0)) throw malformed("length mismatch");
  return data.toString("utf8");
}

type ExchangeState = "initial" | "first-sent" | "deriving" | "final-sent" | "finished";

export class ScramSha256Client {
  readonly mechanism: ScramMechanism;
  private readonly password: Buffer;
  private readonly gs2Header: string;
  private readonly channelBindingData: Buffer | undefined;
  private readonly clientNonce: string;
  private readonly username: string;
  private state: ExchangeState = "initial";
  private clientFirstBare = "";
  private expectedServerSignature: Buffer | undefined;

  /**
   * @param options.channelBinding  binding data: selects SCRAM-SHA-256-PLUS ("p=tls-server-end-point").
   * @param options.clientSupportsBinding  without channelBinding: the connection is TLS and
   *   channel_binding is not "disable", so we announce "y" (we could bind, the server did not offer it);
   *   the server refuses the exchange if it did in fact offer PLUS — that is the downgrade protection.
   * @param options.nonce  fixed client nonce, for tests only.
   * @param options.username  user name in client-first (PostgreSQL ignores it and libpq sends ""); for
   *   RFC test vectors only.
   */
  constructor(
    password: string,
    options: {
      channelBinding?: ChannelBinding;
      clientSupportsBinding?: boolean;
      nonce?: string;
      username?: string;
    } = {},
  ) {
    this.password = Buffer.from(saslprepOrRaw(password), "utf8");
    this.channelBindingData = options.channelBinding?.data;
    if (options.channelBinding) {
      if (options.channelBinding.type !== "tls-server-end-point") {
        throw new AuthenticationError(`unsupported channel binding type "${options.channelBinding.type}"`);
      }
      this.mechanism = "SCRAM-SHA-256-PLUS";
      this.gs2Header = "p=tls-server-end-point,,";
    } else {
      this.mechanism = "SCRAM-SHA-256";
      this.gs2Header = options.clientSupportsBinding ? "y,," : "n,,";
    }
    if (options.nonce !== undefined && !NONCE_CHARS.test(options.nonce)) {
      throw new AuthenticationError("SCRAM nonce must be printable ASCII without commas");
    }
    this.clientNonce = options.nonce ?? randomBytes(NONCE_BYTES).toString("base64");
    this.username = escapeSaslName(options.username ?? "");
  }

  /** True once the exchange finished with a verified server signature over a channel-bound (PLUS) exchange. */
  get channelBound(): boolean {
    return this.state === "finished" && this.mechanism === "SCRAM-SHA-256-PLUS";
  }

  /** True once the server's signature has been verified (AuthenticationOk is acceptable only then). */
  get finished(): boolean {
    return this.state === "finished";
  }

  /** The initial response of SASLInitialResponse: gs2 header + "n=,r=<client nonce>". */
  clientFirstMessage(): Buffer {
    this.expectState("initial");
    this.clientFirstBare = `n=${this.username},r=${this.clientNonce}`;
    this.state = "first-sent";
    return Buffer.from(this.gs2Header + this.clientFirstBare, "utf8");
  }

  /** Takes server-first-message (AuthenticationSASLContinue data); returns client-final-message. */
  async handleServerFirst(data: Buffer): Promise<Buffer> {
    this.expectState("first-sent");
    const serverFirst = decodeText(data);
    const [nonce, encodedSalt, iterationText] = readAttributes(
      serverFirst,
      ["r", "s", "i"],
      "server-first-message",
    ) as [string, string, string];

    const ours = Buffer.from(this.clientNonce, "utf8");
    const theirs = Buffer.from(nonce, "utf8");
    if (theirs.length < ours.length || !timingSafeEqual(theirs.subarray(0, ours.length), ours)) {
      throw new AuthenticationError("invalid SCRAM response (nonce mismatch)");
    }
    if (!NONCE_CHARS.test(nonce)) throw malformed("invalid nonce");
    if (encodedSalt === "" || !STRICT_BASE64.test(encodedSalt)) throw malformed("invalid salt");
    const salt = Buffer.from(encodedSalt, "base64");
    if (!/^[0-9]+$/.test(iterationText)) throw malformed("invalid iteration count");
    const iterations = Number(iterationText);
    if (iterations < 1 || iterations > 0x7fff_ffff) throw malformed("invalid iteration count");

    const cbindInput = this.channelBindingData
      ? Buffer.concat([Buffer.from(this.gs2Header, "utf8"), this.channelBindingData])
      : Buffer.from(this.gs2Header, "utf8");
    const finalWithoutProof = `c=${cbindInput.toString("base64")},r=${nonce}`;

    this.state = "deriving";
    const saltedPassword = await pbkdf2Async(this.password, salt, iterations, KEY_LENGTH, "sha256");
    const clientKey = hmac(saltedPassword, "Client Key");
    const storedKey = createHash("sha256").update(clientKey).digest();
    const authMessage = Buffer.concat([
      Buffer.from(`${this.clientFirstBare},`, "utf8"),
      data,
      Buffer.from(`,${finalWithoutProof}`, "utf8"),
    ]);
    const clientSignature = hmac(storedKey, authMessage);
    const proof = Buffer.alloc(KEY_LENGTH);
    for (let i = 0; i < KEY_LENGTH; i++) proof[i] = clientKey[i]! ^ clientSignature[i]!;
    this.expectedServerSignature = hmac(hmac(saltedPassword, "Server Key"), authMessage);

    this.state = "final-sent";
    return Buffer.from(`${finalWithoutProof},p=${proof.toString("base64")}`, "utf8");
  }

  /** Checks server-final-message (AuthenticationSASLFinal data): the server must prove it knows the secret. */
  verifyServerFinal(data: Buffer): void {
    this.expectState("final-sent");
    const serverFinal = decodeText(data);
    if (serverFinal.startsWith("e")) {
      // Report the server's reason even if extensions follow it.
      const [error] = readAttributes(serverFinal.split(",")[0]!, ["e"], "server-final-message");
      throw new AuthenticationError(
        `error received from server in SCRAM exchange: ${escapeControlCharacters(error ?? "")}`,
      );
    }
    const [encodedSignature] = readAttributes(serverFinal, ["v"], "server-final-message") as [string];
    const signature = STRICT_BASE64.test(encodedSignature)
      ? Buffer.from(encodedSignature, "base64")
      : undefined;
    if (!signature || signature.length !== KEY_LENGTH) throw malformed("invalid server signature");
    if (!timingSafeEqual(signature, this.expectedServerSignature!)) {
      throw new AuthenticationError("incorrect server signature");
    }
    this.state = "finished";
  }

  private expectState(state: ExchangeState): void {
    if (this.state !== state) throw new AuthenticationError("invalid SCRAM exchange state");
  }
}

export interface ScramChoice {
  mechanism: ScramMechanism;
  /** Use SCRAM-SHA-256-PLUS with the given binding data. */
  useBinding: boolean;
  /** Pass as `clientSupportsBinding`: TLS is up and binding not disabled, so the gs2 header says "y". */
  clientSupportsBinding: boolean;
}

/**
 * Picks the SASL mechanism from the server's AuthenticationSASL list as libpq does. `binding` is the
 * channel binding data of the TLS connection, undefined when the connection is not TLS.
 */
export function chooseScramMechanism(
  offered: string[],
  mode: ChannelBindingMode,
  binding: ChannelBinding | undefined,
): ScramChoice {
  if (mode === "require" && !binding) {
    throw new AuthenticationError("channel binding required, but SSL not in use");
  }
  let mechanism: ScramMechanism | undefined;
  for (const name of offered) {
    if (name === "SCRAM-SHA-256-PLUS") {
      // PLUS offered over plain TCP makes no sense (a proxy stripping TLS?); the server would refuse
      // an unbound exchange anyway, so stop here with a clear message.
      if (!binding) {
        throw new AuthenticationError(
          "server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection",
        );
      }
      if (mode !== "disable") mechanism = "SCRAM-SHA-256-PLUS";
    } else if (name === "SCRAM-SHA-256" && !mechanism) {
      mechanism = "SCRAM-SHA-256";
    }
  }
  if (!mechanism) {
    throw new AuthenticationError("none of the server's SASL authentication mechanisms are supported");
  }
  if (mode === "require" && mechanism !== "SCRAM-SHA-256-PLUS") {
    throw new AuthenticationError(
      "channel binding is required, but server did not offer an authentication method that supports channel binding",
    );
  }
  const useBinding = mechanism === "SCRAM-SHA-256-PLUS";
  return { mechanism, useBinding, clientSupportsBinding: !useBinding && mode !== "disable" && !!binding };
}

/** What the server asked for, as far as the channel_binding=require check is concerned. */
export type AuthenticationRequestKind = "ok" | "sasl" | "other";

/**
 * libpq's guard for channel_binding=require: never answer a non-SASL request (it could leak the
 * password to an impostor), and accept AuthenticationOk only after a channel-bound SCRAM exchange.
 * `scram` is the finished exchange, if one took place. No-op for "prefer" and "disable".
 */
export function checkChannelBindingRequirement(
  mode: ChannelBindingMode,
  request: AuthenticationRequestKind,
  scram: ScramSha256Client | undefined,
): void {
  if (mode !== "require") return;
  if (request === "other") {
    throw new AuthenticationError(
      "channel binding required but not supported by server's authentication request",
    );
  }
  if (request === "ok" && !scram?.channelBound) {
    throw new AuthenticationError(
      "channel binding required, but server authenticated client without channel binding",
    );
  }
}
