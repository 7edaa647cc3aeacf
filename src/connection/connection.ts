import type net from "node:net";
import type tls from "node:tls";
import { AuthenticationError, ConnectionError, PgwalError, ProtocolError, ServerError } from "../errors.js";
import {
  type FieldDescription,
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseDataRow,
  parseErrorFields,
  parseParameterStatus,
  parseRowDescription,
} from "../protocol/backend.js";
import { MessageFramer } from "../protocol/framing.js";
import {
  copyDataMessage,
  copyDoneMessage,
  passwordMessage,
  queryMessage,
  saslInitialResponse,
  saslResponse,
  startupMessage,
  terminateMessage,
} from "../protocol/frontend.js";
import { ConnectionMessageLimits } from "../protocol/message-limits.js";
import { Backend, backendMessageName } from "../protocol/message-types.js";
import { tlsServerEndPointHash } from "./auth/channel-binding.js";
import { md5PasswordResponse } from "./auth/md5.js";
import {
  type ChannelBinding,
  checkChannelBindingRequirement,
  chooseScramMechanism,
  ScramSha256Client,
} from "./auth/scram.js";
import type { ConnectionSettings, HostTarget } from "./conninfo.js";
import { effectiveSslMode } from "./conninfo.js";
import { MessageQueue } from "./message-queue.js";
import { lookupPgpass } from "./pgpass.js";
import type { RingChunk } from "./read-ring-chunk.js";
import { connectionFailedPrefix, openTransport, type Transport } from "./transport.js";

/** Result of one statement of a simple query, values as text (replication commands answer in text). */
export interface QueryResult {
  fields: FieldDescription[];
  rows: (string | null)[][];
  command: string;
}

export interface ConnectOptions {
  /** Called for NoticeResponse messages (warnings from the server). */
  onNotice?: (fields: ReturnType<typeof parseErrorFields>) => void;
  /** Called for a .pgpass file that is ignored (bad permissions). */
  onWarning?: (message: string) => void;
  /** Bytes of unread messages after which the socket is paused (default 8 MiB). */
  highWaterBytes?: number;
}

const DEFAULT_HIGH_WATER_BYTES = 8 * 1024 * 1024;

/**
 * One connection to a server over the frontend/backend protocol: startup and authentication,
 * simple queries, and the CopyBoth sub-protocol used by START_REPLICATION. Knows nothing of WAL
 * files; the receiver drives it.
 */
export class PgConnection {
  readonly parameters = new Map<string, string>();
  processId = 0;
  private readonly framer: MessageFramer;
  private readonly queue: MessageQueue;
  private closed = false;
  private inCopy = false;
  /** Backpressure: too many unread messages are queued. */
  private queueFull = false;
  /** ReadyForQuery seen once: errors before it are connection failures. */
  private ready = false;

  private constructor(
    private readonly transport: Transport,
    readonly settings: ConnectionSettings,
    private readonly options: ConnectOptions,
  ) {
    const socket = transport.socket;
    const ring = transport.readRing;
    // libpq's size rules from the first byte: small messages only until AuthenticationOk.
    const limits = new ConnectionMessageLimits();
    this.framer =
      ring === undefined
        ? new MessageFramer(undefined, undefined, undefined, limits)
        : new MessageFramer(undefined, undefined, (size) => ring.spares.takeForMessage(size), limits);
    this.queue = new MessageQueue(
      options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
      (paused) => {
        this.queueFull = paused;
        this.updateFlow();
      },
      () => ring?.reclaim(),
    );
    if (ring) {
      ring.whenRoom(() => this.updateFlow());
      ring.setSink((chunk, owner) => this.onData(chunk, owner));
    } else {
      socket.on("data", (chunk: Buffer) => this.onData(chunk));
    }
    socket.on("error", (error: Error) => this.onTransportError(error));
    socket.on("close", () => this.onTransportError(new ConnectionError(this.closedText())));
    socket.resume();
  }

  get target(): HostTarget {
    return this.transport.target;
  }

  get usesTls(): boolean {
    return this.transport.peerCertificateDer !== undefined;
  }

  /** server_version_num from the startup parameters (e.g. 150004). */
  get serverVersionNum(): number {
    const text = this.parameters.get("server_version") ?? "0";
    const match = /^(\d+)(?:\.(\d+))?/.exec(text);
    if (!match) return 0;
    const major = Number(match[1]);
    return major >= 10 ? major * 10000 + Number(match[2] ?? 0) : major * 10000 + Number(match[2] ?? 0) * 100;
  }

  /** The raw socket, for tests and for backpressure checks. */
  get socket(): net.Socket | tls.TLSSocket {
    return this.transport.socket;
  }

  /** Bytes received and not yet consumed. */
  get queuedBytes(): number {
    return this.queue.bytes;
  }

  /**
   * Connects to the first target that accepts, trying each in order like libpq; when all fail,
   * the error lists every attempt.
   */
  static async connect(settings: ConnectionSettings, options: ConnectOptions = {}): Promise<PgConnection> {
    const failures: PgwalError[] = [];
    for (const target of settings.targets) {
      try {
        return await PgConnection.connectTarget(settings, target, options);
      } catch (error) {
        if (!(error instanceof PgwalError)) throw error;
        failures.push(error);
      }
    }
    if (failures.length === 1) throw failures[0]!;
    // Keep the type of a permanent refusal (wrong password, …) so callers don't retry it.
    const reported = failures.find((f) => !f.retryable) ?? new ConnectionError("", { cause: failures[0] });
    reported.message = failures.map((f) => f.message).join("\n");
    throw reported;
  }

  private static async connectTarget(
    settings: ConnectionSettings,
    target: HostTarget,
    options: ConnectOptions,
  ): Promise<PgConnection> {
    const mode = effectiveSslMode(settings);
    // libpq's second chance: "allow" tries plain then TLS, "prefer" TLS then plain, when the
    // server refuses the first (e.g. a hostssl-only or hostnossl-only pg_hba line).
    const attempts =
      mode === "disable"
        ? [false]
        : mode === "allow"
          ? [false, true]
          : mode === "prefer"
            ? [true, false]
            : [true];
    let lastError: unknown;
    for (const useTls of attempts) {
      let connection: PgConnection | undefined;
      try {
        const startedAt = Date.now();
        const transport = await openTransport(settings, target, useTls);
        connection = new PgConnection(transport, settings, options);
        const timeout = settings.connectTimeoutMs;
        await connection.startupWithin(
          timeout === undefined ? undefined : timeout - (Date.now() - startedAt),
        );
        return connection;
      } catch (error) {
        connection?.destroy();
        lastError = error;
        if (!(error instanceof ServerError) || target.socketPath !== undefined) break;
      }
    }
    throw lastError;
  }

  private closedText(): string {
    return `${connectionFailedPrefix(this.target).replace(/ failed$/, "")}: server closed the connection unexpectedly\n\tThis probably means the server terminated abnormally before or while processing the request.`;
  }

  /** Reads only while the queue has room and, for ring reads, the ring does too. */
  private updateFlow(): void {
    const socket = this.transport.socket;
    const ring = this.transport.readRing;
    if (this.queueFull || (ring !== undefined && !ring.hasRoom)) socket.pause();
    else socket.resume();
  }

  private onData(chunk: Buffer, owner?: RingChunk): void {
    // A message carried over from earlier reads begins in the oldest chunk the framer still holds.
    this.carryOwner = this.carriedChunks[0];
    this.chunkOwner = owner;
    if (owner) this.carriedChunks.push(owner);
    try {
      this.framer.push(chunk, (type, body, fromCarry) => this.route(type, body, chunk, fromCarry));
      if (owner) this.markParsed();
    } catch (error) {
      this.onTransportError(error instanceof Error ? error : new ProtocolError(String(error)));
      this.transport.socket.destroy();
    }
  }

  /** Asynchronous messages are handled here; everything else goes to whoever consumes the queue. */
  /** The ring chunk being parsed, and the one a carried message began in. */
  private chunkOwner: RingChunk | undefined;
  private carryOwner: RingChunk | undefined;
  /** Ring chunks whose bytes the framer may still be carrying (oldest first). */
  private readonly carriedChunks: RingChunk[] = [];

  /** Chunks the framer no longer carries are parsed: only lent message views can pin them now. */
  private markParsed(): void {
    const chunks = this.carriedChunks;
    let carried = this.framer.carriedBytes;
    let keep = 0;
    while (carried > 0 && keep < chunks.length) {
      carried -= chunks[chunks.length - 1 - keep]!.bytes;
      keep++;
    }
    for (const done of chunks.splice(0, chunks.length - keep)) done.parsed = true;
    this.transport.readRing!.reclaim();
  }

  private route(type: number, body: Buffer, chunk: Buffer, fromCarry: boolean): void {
    if (type === Backend.ParameterStatus) {
      const { name, value } = parseParameterStatus(body);
      this.parameters.set(name, value);
    } else if (type === Backend.NoticeResponse) {
      this.options.onNotice?.(parseErrorFields(body));
    } else if (type === Backend.NotificationResponse) {
      // LISTEN is meaningless on a replication connection; ignore.
    } else {
      // A body assembled from several reads lives in a spare buffer (or its own memory), not in the chunk.
      let owner: RingChunk | undefined;
      if (body.buffer === chunk.buffer) owner = fromCarry ? this.carryOwner : this.chunkOwner;
      else {
        owner = this.transport.readRing?.spares.ownerOf(body);
        // The framer is done with it once emitted: only the queue's views can pin it now.
        if (owner !== undefined) owner.parsed = true;
      }
      this.queue.push(type, body, owner);
    }
  }

  private onTransportError(error: Error): void {
    this.closed = true;
    this.queue.fail(
      error instanceof PgwalError
        ? error
        : new ConnectionError(
            `${connectionFailedPrefix(this.target).replace(/ failed$/, "")}: ${error.message}`,
            { cause: error },
          ),
    );
  }

  private write(bytes: Buffer): void {
    if (this.closed) throw this.queue.failed ?? new ConnectionError(this.closedText());
    this.transport.socket.write(bytes);
  }

  /**
   * Startup and authentication, bounded like libpq's connect_timeout: the limit covers the whole
   * attempt, so a server (or proxy) that accepts the TCP connection and then stays silent fails
   * instead of hanging forever. `remainingMs` undefined means no limit.
   */
  private async startupWithin(remainingMs: number | undefined): Promise<void> {
    if (remainingMs === undefined) return this.startup();
    let expire: (error: Error) => void = () => undefined;
    const expired = new Promise<never>((_resolve, reject) => {
      expire = reject;
    });
    const timer = setTimeout(
      () => {
        const error = new ConnectionError(`${connectionFailedPrefix(this.target)}: timeout expired`);
        this.onTransportError(error);
        this.transport.socket.destroy();
        // Startup may be waiting on something other than the socket (the SCRAM key derivation).
        expire(error);
      },
      Math.max(remainingMs, 0),
    );
    const startup = this.startup();
    // Once the time is up, how the abandoned startup ends no longer matters.
    startup.catch(() => undefined);
    try {
      await Promise.race([startup, expired]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async startup(): Promise<void> {
    const s = this.settings;
    const params: Record<string, string> = { user: s.user, database: s.dbname };
    if (s.replication !== undefined) params.replication = s.replication;
    const appName = s.applicationName ?? s.fallbackApplicationName;
    if (appName !== undefined) params.application_name = appName;
    if (s.options !== undefined) params.options = s.options;
    this.write(startupMessage(params));
    await this.authenticate();
    for (;;) {
      const { type, body } = await this.queue.next();
      if (type === Backend.ReadyForQuery) {
        this.ready = true;
        return;
      }
      if (type === Backend.BackendKeyData) this.processId = parseBackendKeyData(body).processId;
      else if (type === Backend.ErrorResponse) throw this.serverError(body);
      else if (type !== Backend.NegotiateProtocolVersion) throw unexpected(type, "startup");
    }
  }

  private serverError(body: Buffer): ServerError {
    const fields = parseErrorFields(body);
    if (!this.ready) {
      // Failures before ReadyForQuery are connection failures: prefix like libpq does.
      fields.message = `${connectionFailedPrefix(this.target)}: ${fields.severity}:  ${fields.message}`;
    }
    return new ServerError(fields);
  }

  private async password(): Promise<string> {
    if (this.settings.password !== undefined) return this.settings.password;
    const target = this.target;
    const found = await lookupPgpass(
      this.settings.passfile,
      {
        host: target.host,
        port: target.port,
        dbname: this.settings.replication === "true" ? "replication" : this.settings.dbname,
        user: this.settings.user,
      },
      this.options.onWarning,
    );
    if (found === undefined) {
      throw new AuthenticationError(`${connectionFailedPrefix(target)}: fe_sendauth: no password supplied`);
    }
    return found;
  }

  private async authenticate(): Promise<void> {
    const bindingMode = this.settings.channelBinding;
    let scram: ScramSha256Client | undefined;
    for (;;) {
      const { type, body } = await this.queue.next();
      if (type === Backend.ErrorResponse) throw this.serverError(body);
      if (type !== Backend.Authentication) throw unexpected(type, "authentication");
      const request = parseAuthentication(body);
      const kind = request.kind === "ok" ? "ok" : request.kind.startsWith("sasl") ? "sasl" : "other";
      this.withTargetPrefix(() => checkChannelBindingRequirement(bindingMode, kind, scram));
      switch (request.kind) {
        case "ok":
          // After SASL started, only a verified server signature lets the server in: an early
          // AuthenticationOk would skip the proof that it knows the password.
          if (scram !== undefined && !scram.finished) {
            throw this.prefixed(
              new AuthenticationError("server sent AuthenticationOk before the SCRAM exchange was complete"),
            );
          }
          return;
        case "cleartext-password":
          this.write(passwordMessage(await this.password()));
          break;
        case "md5-password":
          this.write(
            passwordMessage(md5PasswordResponse(this.settings.user, await this.password(), request.salt)),
          );
          break;
        case "sasl": {
          const binding = this.channelBindingData();
          const choice = this.withTargetPrefix(() =>
            chooseScramMechanism(request.mechanisms, bindingMode, binding),
          );
          scram = new ScramSha256Client(await this.password(), {
            channelBinding: choice.useBinding ? binding : undefined,
            clientSupportsBinding: choice.clientSupportsBinding,
          });
          this.write(saslInitialResponse(scram.mechanism, scram.clientFirstMessage()));
          break;
        }
        case "sasl-continue":
          if (!scram) throw new ProtocolError("server sent SASLContinue before SASL was started");
          this.write(
            saslResponse(
              await scram.handleServerFirst(request.data).catch((error: unknown) => {
                throw this.prefixed(error);
              }),
            ),
          );
          break;
        case "sasl-final":
          if (!scram) throw new ProtocolError("server sent SASLFinal before SASL was started");
          this.withTargetPrefix(() => scram!.verifyServerFinal(request.data));
          break;
        case "unsupported":
          throw new AuthenticationError(
            `${connectionFailedPrefix(this.target)}: authentication method "${request.method}" is not supported by pgwal`,
          );
      }
    }
  }

  /**
   * tls-server-end-point data for SCRAM-SHA-256-PLUS. A certificate whose signature hash cannot be
   * mapped (e.g. Ed25519) only rules out binding; it is fatal only when binding is required.
   */
  private channelBindingData(): ChannelBinding | undefined {
    const der = this.transport.peerCertificateDer;
    if (der === undefined || this.settings.channelBinding === "disable") return undefined;
    try {
      return { type: "tls-server-end-point", data: tlsServerEndPointHash(der) };
    } catch (error) {
      if (this.settings.channelBinding === "require") throw this.prefixed(error);
      return undefined;
    }
  }

  /** Authentication errors raised by the SCRAM code get libpq's "connection to server … failed:" prefix. */
  private withTargetPrefix<T>(action: () => T): T {
    try {
      return action();
    } catch (error) {
      throw this.prefixed(error);
    }
  }

  private prefixed(error: unknown): unknown {
    if (error instanceof AuthenticationError && !error.message.startsWith("connection to server")) {
      error.message = `${connectionFailedPrefix(this.target)}: ${error.message}`;
    }
    return error;
  }

  /**
   * Runs one simple query and returns the result of each statement. A server error is thrown
   * after ReadyForQuery, so the connection stays usable.
   */
  async query(sql: string): Promise<QueryResult[]> {
    if (this.inCopy) throw new ProtocolError("cannot run a query while streaming");
    this.write(queryMessage(sql));
    return this.readResults("query");
  }

  /**
   * Reads RowDescription/DataRow/CommandComplete until ReadyForQuery. `copy` also accepts the
   * switch to CopyBoth; `end of streaming` also takes the tail of a CopyBoth exchange.
   */
  private async readResults(context: "query" | "copy" | "end of streaming"): Promise<QueryResult[]> {
    const results: QueryResult[] = [];
    let fields: FieldDescription[] = [];
    let rows: (string | null)[][] = [];
    let error: ServerError | undefined;
    for (;;) {
      const { type, body } = await this.queue.next();
      switch (type) {
        case Backend.RowDescription:
          fields = parseRowDescription(body);
          rows = [];
          break;
        case Backend.DataRow:
          rows.push(parseDataRow(body).map((v) => (v === null ? null : v.toString("utf8"))));
          break;
        case Backend.CommandComplete:
          results.push({ fields, rows, command: parseCommandComplete(body) });
          fields = [];
          rows = [];
          break;
        case Backend.EmptyQueryResponse:
          break;
        case Backend.ErrorResponse:
          error = this.serverError(body);
          break;
        case Backend.CopyData:
          if (context !== "end of streaming") throw unexpected(type, context);
          break; // WAL after we asked to stop: not ours to keep.
        case Backend.CopyDone:
          if (context !== "end of streaming") throw unexpected(type, context);
          this.sendCopyDone();
          break;
        case Backend.ReadyForQuery:
          if (context === "end of streaming") {
            this.inCopy = false;
            this.sentCopyDone = false;
          }
          if (error) throw error;
          return results;
        case Backend.CopyBothResponse:
          if (context !== "copy") throw unexpected(type, context);
          this.inCopy = true;
          return results;
        default:
          throw unexpected(type, context);
      }
    }
  }

  /**
   * Sends a command that switches to CopyBoth (START_REPLICATION). Resolves once the server has
   * entered copy mode; a server error (slot missing, WAL removed, …) is thrown as ServerError.
   */
  async startCopyBoth(sql: string): Promise<void> {
    this.write(queryMessage(sql));
    await this.readResults("copy");
    if (!this.inCopy)
      throw new ProtocolError(`server did not start streaming in response to ${sql.split(" ")[0]}`);
  }

  /**
   * Every CopyData payload received so far (waits for at least one message). An empty array means
   * the copy is ending (CopyDone or an error is next): call `finishCopy`.
   */
  takeCopyData(): Promise<Buffer[]> {
    return this.queue.takeCopyData();
  }

  /** Wakes a pending `takeCopyData` with an empty batch (used to stop streaming promptly). */
  interrupt(): void {
    this.queue.interrupt();
  }

  /** Sends one CopyData message built by the caller (see standbyStatusUpdateMessage). */
  sendRaw(message: Buffer): void {
    this.write(message);
  }

  sendCopyData(payload: Uint8Array): void {
    this.write(copyDataMessage(payload));
  }

  private sentCopyDone = false;

  /** Tells the server we stop streaming (it answers with CopyDone and the command's completion). */
  sendCopyDone(): void {
    if (this.sentCopyDone) return;
    this.sentCopyDone = true;
    this.write(copyDoneMessage());
  }

  /**
   * Ends the CopyBoth exchange: discards CopyData still in flight, answers the server's CopyDone,
   * and returns the result set sent after it (on a timeline switch: one row with the next timeline
   * and its start position) once the server is ready for queries again.
   */
  async finishCopy(): Promise<QueryResult[]> {
    return this.readResults("end of streaming");
  }

  /** Sends Terminate and closes the socket. Safe to call more than once. */
  async close(): Promise<void> {
    const socket = this.transport.socket;
    if (!this.closed && socket.writable) {
      this.closed = true;
      await new Promise<void>((resolve) => {
        socket.end(terminateMessage(), () => resolve());
        setTimeout(resolve, 1000).unref();
      });
    }
    socket.destroy();
  }

  /** Fails whoever waits on the connection with `error`, and drops it. */
  fail(error: PgwalError): void {
    this.queue.fail(error);
    this.destroy();
  }

  /** Drops the connection at once (error paths). */
  destroy(): void {
    this.closed = true;
    this.transport.socket.destroy();
  }
}

function unexpected(type: number, context: string): ProtocolError {
  return new ProtocolError(`unexpected message ${backendMessageName(type)} during ${context}`);
}
