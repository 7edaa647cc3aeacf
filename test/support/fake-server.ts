/**
 * A scripted fake PostgreSQL server for protocol edge cases a real server never produces:
 * garbage, truncated or oversized messages, odd chunking, WAL with gaps, silence.
 *
 * Each accepted connection reads the startup packet (answering 'N' to SSLRequest and
 * GSSENCRequest unless told otherwise), then runs the script given for it, step by step. Everything
 * the client sends is recorded: queries, standby status updates (parsed), any other message.
 * Steps never throw into the process: a step that cannot go on (unexpected query, wait timed out)
 * is recorded in `problems` and ends the connection, so tests assert on `problems` instead.
 */
import net from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { formatLsn, type Lsn } from "../../src/lsn.js";
import { parseStandbyStatusUpdate, type StandbyStatus } from "../../src/protocol/replication.js";
import {
  authenticationOk,
  backendKeyData,
  commandComplete,
  copyBothResponse,
  copyDone,
  errorResponse,
  parameterStatus,
  readyForQuery,
  resultSet,
  xlogData,
} from "./backend-builders.js";

// --- Script steps ---

export type ScriptStep =
  /** Write bytes as they are; `splitAt` cuts them into separately flushed pieces (offsets into the whole). */
  | { kind: "send"; bytes: Buffer; splitAt?: readonly number[]; pauseMs: number }
  /** Wait for the next Query, check it against `pattern`, write the reply. */
  | { kind: "answer"; pattern: RegExp; reply: Buffer | ((sql: string, conn: FakeConnection) => Buffer) }
  /** Wait for the next frontend message of this type (e.g. "c" for CopyDone). */
  | { kind: "expect"; type: string; timeoutMs: number }
  /** Wait until `condition` holds (checked on every client message and every 20 ms). */
  | { kind: "waitUntil"; what: string; condition: (conn: FakeConnection) => boolean; timeoutMs: number }
  | { kind: "pause"; ms: number }
  /** Run test code (note a time, inspect the archive, …). */
  | { kind: "run"; action: (conn: FakeConnection) => void | Promise<void> }
  /** Half-close after pending writes (FIN). */
  | { kind: "close" }
  /** Abort with a TCP RST. */
  | { kind: "reset" }
  /** Say nothing more and ignore the client until it leaves or the server stops. */
  | { kind: "stall" };

export function send(
  bytes: Buffer | readonly Buffer[],
  options: { splitAt?: readonly number[]; pauseMs?: number } = {},
): ScriptStep {
  const whole = Buffer.isBuffer(bytes) ? bytes : Buffer.concat(bytes);
  return { kind: "send", bytes: whole, splitAt: options.splitAt, pauseMs: options.pauseMs ?? 5 };
}

export function answer(
  pattern: RegExp,
  reply: Buffer | ((sql: string, conn: FakeConnection) => Buffer),
): ScriptStep {
  return { kind: "answer", pattern, reply };
}

export function expectMessage(type: string, timeoutMs = 5000): ScriptStep {
  return { kind: "expect", type, timeoutMs };
}

export function waitUntil(
  what: string,
  condition: (conn: FakeConnection) => boolean,
  timeoutMs = 5000,
): ScriptStep {
  return { kind: "waitUntil", what, condition, timeoutMs };
}

export function pause(ms: number): ScriptStep {
  return { kind: "pause", ms };
}

export function run(action: (conn: FakeConnection) => void | Promise<void>): ScriptStep {
  return { kind: "run", action };
}

export const close: ScriptStep = { kind: "close" };
export const reset: ScriptStep = { kind: "reset" };
export const stall: ScriptStep = { kind: "stall" };

// --- Canned replies ---

/** AuthenticationOk, ParameterStatus (server_version and a few usual ones), BackendKeyData, ReadyForQuery. */
export function startupResponse(options: { serverVersion?: string; processId?: number } = {}): Buffer {
  return Buffer.concat([
    authenticationOk(),
    parameterStatus("server_version", options.serverVersion ?? "16.4"),
    parameterStatus("server_encoding", "UTF8"),
    parameterStatus("client_encoding", "UTF8"),
    parameterStatus("integer_datetimes", "on"),
    backendKeyData(options.processId ?? 4242),
    readyForQuery(),
  ]);
}

export function identifySystemResponse(systemId: bigint, timeline: number, xlogpos: Lsn): Buffer {
  return Buffer.concat([
    resultSet(
      ["systemid", "timeline", "xlogpos", "dbname"],
      [[systemId.toString(), String(timeline), formatLsn(xlogpos), null]],
      "IDENTIFY_SYSTEM",
    ),
    readyForQuery(),
  ]);
}

export function showResponse(name: string, value: string): Buffer {
  return Buffer.concat([resultSet([name], [[value]], "SHOW"), readyForQuery()]);
}

/** How SHOW wal_segment_size prints a size (the server picks the largest exact unit). */
export function segmentSizeText(bytes: number): string {
  if (bytes % 1024 ** 3 === 0) return `${bytes / 1024 ** 3}GB`;
  if (bytes % 1024 ** 2 === 0) return `${bytes / 1024 ** 2}MB`;
  return `${bytes / 1024}kB`;
}

/** READ_REPLICATION_SLOT's row; nulls for a slot that does not exist or has no restart_lsn. */
export function readReplicationSlotResponse(
  slotType: "physical" | "logical" | null,
  restartLsn: Lsn | null,
  restartTimeline: number | null,
): Buffer {
  return Buffer.concat([
    resultSet(
      ["slot_type", "restart_lsn", "restart_tli"],
      [
        [
          slotType,
          restartLsn === null ? null : formatLsn(restartLsn),
          restartTimeline === null ? null : String(restartTimeline),
        ],
      ],
      "READ_REPLICATION_SLOT",
    ),
    readyForQuery(),
  ]);
}

/** `fileName` overrides the name a real server reports (TTTTTTTT.history), for hostile-server tests. */
export function timelineHistoryResponse(timeline: number, content: string, fileName?: string): Buffer {
  const name = fileName ?? `${timeline.toString(16).toUpperCase().padStart(8, "0")}.history`;
  return Buffer.concat([
    resultSet(["filename", "content"], [[name, content]], "TIMELINE_HISTORY"),
    readyForQuery(),
  ]);
}

/** What the server sends when START_REPLICATION succeeds. */
export function startReplicationResponse(): Buffer {
  return copyBothResponse();
}

/** End of a timeline: CopyDone, the (next_tli, next_tli_startpos) row, command completion, ready. */
export function endOfTimelineResponse(nextTimeline: number, nextStart: Lsn): Buffer {
  return Buffer.concat([
    copyDone(),
    resultSet(["next_tli", "next_tli_startpos"], [[String(nextTimeline), formatLsn(nextStart)]]),
    commandComplete("START_STREAMING"),
    readyForQuery(),
  ]);
}

/** The server's side of a stream the client ended with CopyDone: no next timeline. */
export function streamStoppedResponse(): Buffer {
  return Buffer.concat([copyDone(), commandComplete("START_STREAMING"), readyForQuery()]);
}

export interface FakeClusterIdentity {
  systemId: bigint;
  timeline: number;
  /** IDENTIFY_SYSTEM's xlogpos: the receiver starts at the beginning of its segment. */
  xlogpos: Lsn;
  segmentSize: number;
  serverVersion?: string;
  /** Answer READ_REPLICATION_SLOT (asked on 15+ with a slot) with this row; default: physical, no restart_lsn. */
  slotRow?: Buffer;
  /** TIMELINE_HISTORY answer for timeline > 1; default: a one-line history. */
  historyContent?: string;
  /** File name TIMELINE_HISTORY reports; default: the one a real server sends. */
  historyFileName?: string;
}

/**
 * The exchange a receiver goes through before WAL flows, ending with START_REPLICATION accepted.
 * `withSlot` adds READ_REPLICATION_SLOT on servers from 15 (as the receiver asks it only then).
 */
export function replicationHandshake(
  identity: FakeClusterIdentity,
  options: { withSlot?: boolean } = {},
): ScriptStep[] {
  const version = identity.serverVersion ?? "16.4";
  const steps: ScriptStep[] = [
    send(startupResponse({ serverVersion: version })),
    answer(/^SHOW data_directory_mode$/, showResponse("data_directory_mode", "0700")),
    answer(
      /^IDENTIFY_SYSTEM$/,
      identifySystemResponse(identity.systemId, identity.timeline, identity.xlogpos),
    ),
    answer(
      /^SHOW wal_segment_size$/,
      showResponse("wal_segment_size", segmentSizeText(identity.segmentSize)),
    ),
  ];
  if (options.withSlot && Number.parseInt(version, 10) >= 15) {
    steps.push(
      answer(
        /^READ_REPLICATION_SLOT /,
        identity.slotRow ?? readReplicationSlotResponse("physical", null, null),
      ),
    );
  }
  if (identity.timeline > 1) {
    const history =
      identity.historyContent ?? `${identity.timeline - 1}\t0/1000000\tno recovery target specified\n`;
    steps.push(
      answer(
        new RegExp(`^TIMELINE_HISTORY ${identity.timeline}$`),
        timelineHistoryResponse(identity.timeline, history, identity.historyFileName),
      ),
    );
  }
  steps.push(answer(/^START_REPLICATION /, startReplicationResponse()));
  return steps;
}

/**
 * Deterministic "WAL" bytes: the byte at position p depends on p alone, so any file region can be
 * compared with what the server sent without keeping a copy.
 */
export function walBytes(start: Lsn, length: number): Buffer {
  const out = Buffer.allocUnsafe(length);
  let p = Number(start % 0x1_0000_0000n);
  for (let i = 0; i < length; i++, p++) out[i] = ((p * 31) ^ (p >>> 9) ^ (p >>> 17)) & 0xff;
  return out;
}

/** XLogData messages carrying walBytes(start, length) in pieces of `chunk` bytes. */
export function xlogStream(
  start: Lsn,
  length: number,
  options: { chunk?: number; serverEnd?: Lsn } = {},
): Buffer {
  const chunk = options.chunk ?? 128 * 1024;
  const end = options.serverEnd ?? start + BigInt(length);
  const messages: Buffer[] = [];
  for (let offset = 0; offset < length; offset += chunk) {
    const at = start + BigInt(offset);
    messages.push(xlogData(at, end, 0n, walBytes(at, Math.min(chunk, length - offset))));
  }
  return Buffer.concat(messages);
}

// --- Recording ---

export interface ClientMessage {
  /** Frontend message type as a character ('Q', 'd', 'c', 'X', 'p', …). */
  type: string;
  body: Buffer;
  /** performance.now() at arrival. */
  at: number;
}

export interface RecordedStatus extends StandbyStatus {
  at: number;
}

export class FakeConnection {
  readonly startupParameters = new Map<string, string>();
  /** Protocol version code of the startup packet (196608 for 3.0). */
  protocolVersion = 0;
  sslRequested = false;
  gssEncRequested = false;
  readonly messages: ClientMessage[] = [];
  readonly queries: string[] = [];
  readonly statusUpdates: RecordedStatus[] = [];
  /** The client closed or reset its side. */
  clientGone = false;
  /** Bytes the script has written (for flush-vs-sent checks). */
  bytesSent = 0;
  private readonly unconsumed: ClientMessage[] = [];
  private wake: (() => void) | undefined;

  constructor(
    readonly index: number,
    readonly socket: net.Socket,
    private readonly onStatus: ((status: RecordedStatus, conn: FakeConnection) => void) | undefined,
  ) {}

  /** @internal called by the server for each complete frontend message. */
  receive(message: ClientMessage): void {
    this.messages.push(message);
    if (message.type === "Q")
      this.queries.push(message.body.toString("utf8", 0, Math.max(0, message.body.length - 1)));
    if (message.type === "d" && message.body[0] === 0x72) {
      const status = { ...parseStandbyStatusUpdate(message.body), at: message.at };
      this.statusUpdates.push(status);
      this.onStatus?.(status, this);
    }
    this.unconsumed.push(message);
    this.notify();
  }

  /** @internal */
  gone(): void {
    this.clientGone = true;
    this.notify();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  /** True once the client has closed or reset the connection, waiting up to `timeoutMs` for it. */
  async waitGone(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.clientGone && performance.now() < deadline) await this.changed(deadline);
    return this.clientGone;
  }

  /** Waits for the next message of `type` not yet taken by a step; undefined if the client left or time ran out. */
  async take(type: string, timeoutMs: number): Promise<ClientMessage | undefined> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const index = this.unconsumed.findIndex((m) => m.type === type);
      if (index >= 0) return this.unconsumed.splice(index, 1)[0];
      if (this.clientGone || performance.now() >= deadline) return undefined;
      await this.changed(deadline);
    }
  }

  /** Resolves on the next client message, departure, or after 20 ms (whichever first). */
  async changed(deadline = Number.POSITIVE_INFINITY): Promise<void> {
    const wait = Math.max(0, Math.min(20, deadline - performance.now()));
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, wait);
      this.wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

// --- The server ---

const SSL_REQUEST_CODE = 80877103;
const GSSENC_REQUEST_CODE = 80877104;
const CANCEL_REQUEST_CODE = 80877102;
const MAX_STARTUP_PACKET = 10_000;

export interface FakeServerOptions {
  /** Script of the n-th accepted connection; connections beyond the list are closed at once (and recorded as a problem). */
  scripts: readonly (readonly ScriptStep[])[];
  /** Answer to SSLRequest: 'N' (default) or "silent" (never answer). */
  sslResponse?: "N" | "silent";
  /** Called synchronously when a standby status update arrives (to compare it with the archive at that instant). */
  onStatusUpdate?: (status: RecordedStatus, conn: FakeConnection) => void;
}

export class FakeServer {
  readonly connections: FakeConnection[] = [];
  /** Script deviations: unexpected queries, waits that timed out, extra connections. Tests expect it empty. */
  readonly problems: string[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly running = new Set<Promise<void>>();
  private stopped = false;

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
    private readonly options: FakeServerOptions,
  ) {}

  static async start(options: FakeServerOptions): Promise<FakeServer> {
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port: 0 }, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address() as net.AddressInfo;
    const fake = new FakeServer(server, address.port, options);
    server.on("connection", (socket) => fake.accept(socket));
    return fake;
  }

  /** Closes the listener and every connection (RST), and waits for the scripts to end. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const socket of this.sockets) socket.destroy();
    await closed;
    await Promise.allSettled([...this.running]);
  }

  private accept(socket: net.Socket): void {
    socket.setNoDelay(true);
    this.sockets.add(socket);
    const index = this.connections.length;
    const conn = new FakeConnection(index, socket, this.options.onStatusUpdate);
    this.connections.push(conn);
    // The client may reset us (e.g. when it gives up): never an uncaught error.
    socket.on("error", () => conn.gone());
    socket.on("close", () => {
      this.sockets.delete(socket);
      conn.gone();
    });
    const script = this.options.scripts[index];
    if (script === undefined || this.stopped) {
      this.problems.push(
        `connection #${index + 1} was not expected (${this.options.scripts.length} scripted)`,
      );
      socket.destroy();
      return;
    }
    const task = this.serve(conn, script)
      .catch((error: unknown) => {
        this.problems.push(
          `connection #${index + 1}: ${error instanceof Error ? error.message : String(error)}`,
        );
        socket.destroy();
      })
      .finally(() => this.running.delete(task));
    this.running.add(task);
  }

  private async serve(conn: FakeConnection, script: readonly ScriptStep[]): Promise<void> {
    const reader = new FrontendReader(conn, this.options.sslResponse ?? "N");
    conn.socket.on("data", (chunk: Buffer) => {
      const problem = reader.push(chunk);
      if (problem !== undefined) {
        this.problems.push(`connection #${conn.index + 1}: ${problem}`);
        conn.socket.destroy();
      }
    });
    if (!(await reader.startupReceived())) return;
    for (const step of script) {
      if (this.stopped || conn.socket.destroyed) return;
      if (!(await this.runStep(conn, step))) return;
    }
    // End of script: hold the connection until the client leaves or the server stops.
    while (!conn.clientGone && !this.stopped) await conn.changed();
  }

  /** Returns false when the connection is finished (closed, reset, stalled, or a problem). */
  private async runStep(conn: FakeConnection, step: ScriptStep): Promise<boolean> {
    const where = `connection #${conn.index + 1}`;
    switch (step.kind) {
      case "send":
        return this.write(conn, step.bytes, step.splitAt ?? [], step.pauseMs);
      case "answer": {
        const message = await conn.take("Q", 5000);
        if (message === undefined) {
          if (!conn.clientGone) this.problems.push(`${where}: no query arrived (expected ${step.pattern})`);
          return false;
        }
        const sql = message.body.toString("utf8", 0, message.body.length - 1);
        if (!step.pattern.test(sql)) {
          this.problems.push(`${where}: query "${sql}" does not match ${step.pattern}`);
          await this.write(
            conn,
            errorResponse({
              severity: "ERROR",
              code: "XX000",
              message: `fake server: unexpected query "${sql}"`,
            }),
            [],
            0,
          );
          await this.write(conn, readyForQuery(), [], 0);
          return false;
        }
        const reply = typeof step.reply === "function" ? step.reply(sql, conn) : step.reply;
        return this.write(conn, reply, [], 0);
      }
      case "expect": {
        const message = await conn.take(step.type, step.timeoutMs);
        if (message === undefined) {
          if (!conn.clientGone)
            this.problems.push(`${where}: no '${step.type}' message within ${step.timeoutMs} ms`);
          return false;
        }
        return true;
      }
      case "waitUntil": {
        const deadline = performance.now() + step.timeoutMs;
        while (!step.condition(conn)) {
          if (conn.clientGone) return false;
          if (performance.now() >= deadline) {
            this.problems.push(`${where}: timed out waiting until ${step.what}`);
            return false;
          }
          await conn.changed(deadline);
        }
        return true;
      }
      case "pause":
        await sleep(step.ms);
        return true;
      case "run":
        await step.action(conn);
        return true;
      case "close":
        await new Promise<void>((resolve) => conn.socket.end(() => resolve()));
        return false;
      case "reset":
        conn.socket.resetAndDestroy();
        return false;
      case "stall":
        while (!conn.clientGone && !this.stopped) await conn.changed();
        return false;
    }
  }

  /** Writes `bytes` in the pieces `splitAt` asks for, each flushed separately; false if the socket is gone. */
  private async write(
    conn: FakeConnection,
    bytes: Buffer,
    splitAt: readonly number[],
    pauseMs: number,
  ): Promise<boolean> {
    const cuts = [...splitAt.filter((at) => at > 0 && at < bytes.length), bytes.length].sort((a, b) => a - b);
    let from = 0;
    for (const to of cuts) {
      if (to === from) continue;
      if (conn.socket.destroyed || !conn.socket.writable) return false;
      const piece = bytes.subarray(from, to);
      const ok = await new Promise<boolean>((resolve) =>
        conn.socket.write(piece, (error) => resolve(!error)),
      );
      if (!ok) return false;
      conn.bytesSent += piece.length;
      from = to;
      if (to < bytes.length && pauseMs > 0) await sleep(pauseMs);
    }
    return true;
  }
}

/** Parses what the client sends: the startup phase (SSL/GSS requests, startup packet), then typed messages. */
class FrontendReader {
  private buffered: Buffer = Buffer.alloc(0);
  private startupDone = false;
  private startupWaiter: ((ok: boolean) => void) | undefined;
  private startupResult: boolean | undefined;

  constructor(
    private readonly conn: FakeConnection,
    private readonly sslResponse: "N" | "silent",
  ) {
    conn.socket.once("close", () => this.settleStartup(false));
  }

  startupReceived(): Promise<boolean> {
    if (this.startupResult !== undefined) return Promise.resolve(this.startupResult);
    return new Promise((resolve) => {
      this.startupWaiter = resolve;
    });
  }

  private settleStartup(ok: boolean): void {
    if (this.startupResult !== undefined) return;
    this.startupResult = ok;
    this.startupWaiter?.(ok);
  }

  /** Returns a problem description when the client's bytes make no sense. */
  push(chunk: Buffer): string | undefined {
    this.buffered = this.buffered.length === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (!this.startupDone) {
        if (this.buffered.length < 8) return undefined;
        const length = this.buffered.readInt32BE(0);
        if (length < 8 || length > MAX_STARTUP_PACKET) return `bad startup packet length ${length}`;
        if (this.buffered.length < length) return undefined;
        const packet = this.buffered.subarray(0, length);
        this.buffered = this.buffered.subarray(length);
        const problem = this.startupPacket(packet);
        if (problem !== undefined) return problem;
        continue;
      }
      if (this.buffered.length < 5) return undefined;
      const length = this.buffered.readInt32BE(1);
      if (length < 4) return `bad message length ${length}`;
      if (this.buffered.length < 1 + length) return undefined;
      const type = String.fromCharCode(this.buffered[0]!);
      // Copy: the body outlives this chunk in the records.
      const body = Buffer.from(this.buffered.subarray(5, 1 + length));
      this.buffered = this.buffered.subarray(1 + length);
      this.conn.receive({ type, body, at: performance.now() });
    }
  }

  private startupPacket(packet: Buffer): string | undefined {
    const code = packet.readInt32BE(4);
    if (code === SSL_REQUEST_CODE || code === GSSENC_REQUEST_CODE) {
      if (code === SSL_REQUEST_CODE) this.conn.sslRequested = true;
      else this.conn.gssEncRequested = true;
      if (code === GSSENC_REQUEST_CODE || this.sslResponse === "N") this.conn.socket.write("N");
      return undefined;
    }
    if (code === CANCEL_REQUEST_CODE) return "unexpected CancelRequest";
    if (code >> 16 !== 3) return `unsupported protocol version ${code >> 16}.${code & 0xffff}`;
    this.conn.protocolVersion = code;
    const parts = packet.toString("utf8", 8).split("\0");
    for (let i = 0; i + 1 < parts.length && parts[i] !== ""; i += 2) {
      this.conn.startupParameters.set(parts[i]!, parts[i + 1]!);
    }
    this.startupDone = true;
    this.settleStartup(true);
    return undefined;
  }
}
