import { EventEmitter } from "node:events";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import {
  identifySystem,
  parseMemorySetting,
  readReplicationSlot,
  type StreamEnd,
  showSetting,
  startReplication,
  streamEndFromResults,
  timelineHistory,
} from "../connection/commands.js";
import { PgConnection } from "../connection/connection.js";
import type { ConnectionSettings } from "../connection/conninfo.js";
import {
  ArchiveError,
  ConnectionError,
  PgwalError,
  ProtocolError,
  ServerError,
  StorageError,
  UsageError,
} from "../errors.js";
import {
  formatLsn,
  INVALID_LSN,
  isValidSegmentSize,
  type Lsn,
  segmentNumberOf,
  segmentOffsetOf,
  segmentStartOf,
} from "../lsn.js";
import {
  PRIMARY_KEEPALIVE,
  parsePrimaryKeepalive,
  parseXLogData,
  XLOG_DATA,
} from "../protocol/replication.js";
import { escapeControlCharacters } from "../protocol/untrusted-text.js";
import { findStreamingStart } from "../wal/archive-scan.js";
import type { CompressionSpec } from "../wal/compression.js";
import type { WalFileSystem } from "../wal/fsync.js";
import { walFileName } from "../wal/names.js";
import { readSystemIdentifier } from "../wal/page-header.js";
import { createWalStorage, type SegmentFile, type WalStorage } from "../wal/storage.js";
import { Backoff } from "./backoff.js";
import { FeedbackPolicy } from "./feedback.js";
import type { ReceiverLogger } from "./logger.js";

export interface ReceiverOptions {
  /** Resolved connection settings; `replication=true` is forced. */
  connection: ConnectionSettings;
  directory: string;
  slot?: string;
  /** Flush and report after every batch (synchronous standby). */
  synchronous?: boolean;
  /** Skip fsync (unsafe; pg_receivewal's --no-sync). */
  noSync?: boolean;
  /** --status-interval in seconds (default 10; 0 = only when the server asks). */
  statusIntervalSeconds?: number;
  /** Stop once WAL up to this position is written. */
  endpos?: Lsn;
  /** Exit on the first connection loss instead of reconnecting. */
  noLoop?: boolean;
  compression?: CompressionSpec;
  logger: ReceiverLogger;
  /** Reconnect delays (ms): first, and the ceiling of the exponential backoff. */
  reconnectDelayMs?: { initial: number; max: number };
  /** Bytes buffered from the socket before it is paused (backpressure). */
  highWaterBytes?: number;
  /**
   * A connection silent for this long is dead (ms, default 60 000). At half of it, a status update
   * asks the server for a reply, so an idle but healthy server always answers in time.
   */
  stallTimeoutMs?: number;
  /** File-system operations of the archive (tests inject slow disks and ENOSPC). */
  fileSystem?: WalFileSystem;
  /** Upper bound for the flush position reported to the server (e.g. hooks holding the slot). */
  flushCap?: () => Lsn | undefined;
}

export interface SegmentCompletedEvent {
  walFileName: string;
  path: string;
  timeline: number;
  startLsn: Lsn;
  endLsn: Lsn;
}

export interface ReceiverEvents {
  connected: [
    { systemId: bigint; timeline: number; serverPosition: Lsn; segmentSize: number; server: string },
  ];
  streaming: [{ timeline: number; start: Lsn }];
  segment: [SegmentCompletedEvent];
  history: [{ timeline: number; path: string }];
  timeline: [{ from: number; to: number; start: Lsn }];
  flushed: [{ lsn: Lsn; timeline: number }];
  /** One fsync (or fsync + rename at a segment end) finished; for latency metrics. */
  synced: [{ durationMs: number; segmentEnd: boolean }];
  disconnected: [{ error: PgwalError; retryInMs: number | undefined }];
}

/** Why the receiver ended. */
export type ReceiverExit = { reason: "endpos" | "stopped" };

const DEFAULT_HIGH_WATER_BYTES = 8 * 1024 * 1024;
const DEFAULT_STALL_TIMEOUT_MS = 60_000;

/**
 * The receive loop: connect, choose the start position, stream into the archive, follow
 * timeline switches, report progress, and reconnect. It knows positions and messages; where the
 * bytes go is the WalStorage's business.
 */
export class WalReceiver extends EventEmitter<ReceiverEvents> {
  private readonly options: ReceiverOptions;
  private readonly log: ReceiverLogger;
  private stopRequested = false;
  private connection: PgConnection | undefined;

  // Positions of the current stream (bigint LSNs).
  private timeline = 0;
  private segmentSize = 0;
  /** End of WAL accepted from the server (written or waiting in `pending`). */
  private receivedLsn: Lsn = 0n;
  /** End of WAL handed to the OS. */
  private writtenLsn: Lsn = 0n;
  /** End of WAL known durable: the only position ever reported as flush. */
  private flushedLsn: Lsn = 0n;
  /** The flush position is backed by the archive (else it is reported as 0). */
  private syncedOnStream = false;
  /** Latest end of WAL the server told us about (keepalives, XLogData). */
  private serverEndLsn: Lsn = 0n;
  private lastMessageAt = 0;

  private storage: WalStorage | undefined;
  private file: SegmentFile | undefined;
  private fileStartLsn: Lsn = 0n;
  /** Views of received WAL for the current file, written with one writev per batch. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  private feedback: FeedbackPolicy;
  private statusTimer: NodeJS.Timeout | undefined;
  private inBatch = false;
  private idleTick: Promise<void> | undefined;
  private tickFailure: unknown;

  constructor(options: ReceiverOptions) {
    super();
    this.options = options;
    this.log = options.logger;
    const reportFlush = options.slot !== undefined || options.synchronous === true;
    this.feedback = new FeedbackPolicy(reportFlush, (options.statusIntervalSeconds ?? 10) * 1000);
    if (options.synchronous && options.noSync) {
      throw new UsageError("cannot use --synchronous together with --no-sync");
    }
  }

  /** Positions for status reporting (metrics, systemd STATUS, progress). */
  get positions(): {
    timeline: number;
    received: Lsn;
    written: Lsn;
    flushed: Lsn;
    serverEnd: Lsn;
    lastMessageAt: number;
    segmentSize: number;
  } {
    return {
      timeline: this.timeline,
      received: this.receivedLsn,
      written: this.writtenLsn,
      flushed: this.flushedLsn,
      serverEnd: this.serverEndLsn,
      lastMessageAt: this.lastMessageAt,
      segmentSize: this.segmentSize,
    };
  }

  /**
   * Asks the receiver to stop: the write in hand is finished and fsynced, a final status update
   * and CopyDone are sent, and `run` resolves with reason "stopped".
   */
  stop(): void {
    if (this.stopRequested) return;
    this.stopRequested = true;
    this.log.info({}, "stop requested: finishing the current write");
    this.connection?.interrupt();
  }

  /** Streams until `endpos`, `stop()`, or an error that retrying cannot fix (thrown). */
  async run(): Promise<ReceiverExit> {
    const { initial, max } = this.options.reconnectDelayMs ?? { initial: 1000, max: 60_000 };
    const backoff = new Backoff(initial, max);
    while (!this.stopRequested) {
      let progressed = false;
      try {
        const exit = await this.streamOnce(() => {
          progressed = true;
        });
        if (exit) {
          await this.connection?.close();
          this.connection = undefined;
          return exit;
        }
        // The server ended the stream without an error (e.g. shutdown): like a disconnect.
        throw new ProtocolError("replication stream was terminated before stop point");
      } catch (error) {
        await this.closeAfterError();
        const typed = toPgwalError(error);
        // Stopping while the network fails is still a clean stop; a storage failure is not: what
        // was written may not be durable, so it ends the run with the error (exit 1), not a retry.
        const storageFailedAtStop = this.stopRequested && typed instanceof StorageError;
        if (this.stopRequested && typed.retryable && !storageFailedAtStop) break;
        if (!typed.retryable || this.options.noLoop || storageFailedAtStop) {
          this.emit("disconnected", { error: typed, retryInMs: undefined });
          throw typed;
        }
        if (progressed) backoff.reset();
        const delay = backoff.next();
        this.log.warn(
          { err: typed.message, retryInMs: delay, attempt: backoff.attempts },
          `disconnected: ${typed.message}; reconnecting in ${(delay / 1000).toFixed(1)} s`,
        );
        this.emit("disconnected", { error: typed, retryInMs: delay });
        await this.sleepUnlessStopped(delay);
      }
    }
    return { reason: "stopped" };
  }

  private async sleepUnlessStopped(ms: number): Promise<void> {
    const step = 100;
    for (let waited = 0; waited < ms && !this.stopRequested; waited += step) {
      await sleep(Math.min(step, ms - waited));
    }
  }

  private async closeAfterError(): Promise<void> {
    this.stopStatusTimer();
    const file = this.file;
    this.file = undefined;
    this.pending = [];
    this.pendingBytes = 0;
    // No rename and no fsync: the next run streams this segment again from its start.
    await file?.abandon().catch(() => undefined);
    this.connection?.destroy();
    this.connection = undefined;
  }

  private connectionSettings(): ConnectionSettings {
    const s = this.options.connection;
    return { ...s, replication: "true", fallbackApplicationName: s.fallbackApplicationName ?? "pgwal" };
  }

  /** One connection's worth of streaming. Returns an exit when done for good, undefined if the server ended. */
  private async streamOnce(onProgress: () => void): Promise<ReceiverExit | undefined> {
    const conn = await PgConnection.connect(this.connectionSettings(), {
      highWaterBytes: this.options.highWaterBytes ?? DEFAULT_HIGH_WATER_BYTES,
      onNotice: (n) => this.log.warn({ sqlstate: n.code }, n.message),
      onWarning: (m) => this.log.warn({}, m),
    });
    this.connection = conn;
    if (this.stopRequested) return { reason: "stopped" };

    const fileMode = await this.fileModeFromServer(conn);
    const identity = await identifySystem(conn);
    if (identity.dbname !== null) {
      throw new UsageError("replication connection using slot is unexpectedly database specific");
    }
    const segmentSize = parseMemorySetting(await showSetting(conn, "wal_segment_size"));
    if (!isValidSegmentSize(segmentSize)) {
      throw new ProtocolError(
        `remote server reported invalid WAL segment size (${segmentSize} bytes): it must be a power of two between 1 MB and 1 GB`,
      );
    }
    this.segmentSize = segmentSize;
    this.storage = createWalStorage({
      directory: this.options.directory,
      noSync: this.options.noSync === true,
      fileMode,
      compression: this.options.compression ?? { method: "none" },
      onWarning: (msg: string, fields?: Record<string, unknown>) => this.log.warn(fields ?? {}, msg),
      fileSystem: this.options.fileSystem,
      blockingWrites: this.options.synchronous === true,
    });
    const server = conn.target.socketPath ?? `${conn.target.host}:${conn.target.port}`;
    this.log.info(
      {
        systemId: identity.systemId.toString(),
        timeline: identity.timeline,
        lsn: formatLsn(identity.xlogpos),
        server,
      },
      `connected to ${server}, server version ${conn.parameters.get("server_version") ?? "?"}`,
    );
    this.emit("connected", {
      systemId: identity.systemId,
      timeline: identity.timeline,
      serverPosition: identity.xlogpos,
      segmentSize,
      server,
    });

    let { start, timeline, archived } = await this.chooseStart(
      conn,
      identity.systemId,
      identity.timeline,
      identity.xlogpos,
    );
    for (;;) {
      if (this.options.endpos !== undefined && start > this.options.endpos) {
        this.log.info(
          { lsn: formatLsn(start), endpos: formatLsn(this.options.endpos) },
          "start position is past --endpos: nothing to do",
        );
        return { reason: "endpos" };
      }
      await this.ensureHistoryFile(conn, timeline);
      const end = await this.streamTimeline(conn, timeline, start, archived, onProgress);
      if (end.kind === "stopped") {
        if (this.exitReason) return { reason: this.exitReason };
        return undefined;
      }
      // End of a timeline: the server tells us where the next one starts.
      if (end.timeline <= timeline) {
        throw new ProtocolError(
          `server reported unexpected next timeline ${end.timeline}, following timeline ${timeline}`,
        );
      }
      if (end.start > this.receivedLsn) {
        throw new ProtocolError(
          `server stopped streaming timeline ${timeline} at ${formatLsn(this.receivedLsn)}, but reported next timeline ${end.timeline} to begin at ${formatLsn(end.start)}`,
        );
      }
      this.log.info(
        { timeline: end.timeline, lsn: formatLsn(end.start), previousTimeline: timeline },
        `switched to timeline ${end.timeline} at ${formatLsn(end.start)}`,
      );
      this.emit("timeline", { from: timeline, to: end.timeline, start: end.start });
      timeline = end.timeline;
      start = segmentStartOf(end.start, segmentSize);
      archived = true; // everything before it was fsynced when the old timeline's file was closed
    }
  }

  private exitReason: "endpos" | "stopped" | undefined;

  /** Files 0600 unless the server's data directory allows group access (PostgreSQL 11+). */
  private async fileModeFromServer(conn: PgConnection): Promise<number> {
    try {
      const mode = Number.parseInt(await showSetting(conn, "data_directory_mode"), 8);
      return (mode & 0o040) !== 0 ? 0o640 : 0o600;
    } catch (error) {
      if (error instanceof ServerError) return 0o600;
      throw error;
    }
  }

  /**
   * pg_receivewal's FindStreamingStart, then READ_REPLICATION_SLOT (15+), then the server's
   * position; always rounded down to a segment start. Refuses an archive of another cluster.
   */
  private async chooseStart(
    conn: PgConnection,
    systemId: bigint,
    serverTimeline: number,
    serverPosition: Lsn,
  ): Promise<{ start: Lsn; timeline: number; archived: boolean }> {
    const size = this.segmentSize;
    const found = await findStreamingStart(this.options.directory, size, (msg) => this.log.warn({}, msg));
    if (found !== undefined) {
      const newest = path.join(this.options.directory, found.fileName);
      const archived = await readSystemIdentifier(newest);
      if (archived !== undefined && archived !== systemId) {
        throw new ArchiveError(
          `archive "${this.options.directory}" holds WAL of database system ${archived} (file "${found.fileName}"), but the server's system identifier is ${systemId}: refusing to mix clusters; use an empty directory for this server`,
        );
      }
      // An earlier run killed between a rename and its directory fsync left a name that may not
      // survive a power cut; the resume position is reported flushed at once.
      await this.storage!.makeDurable(found.fileName);
      this.log.info(
        { lsn: formatLsn(found.startLsn), timeline: found.timeline, segment: found.fileName },
        `resuming from the archive at ${formatLsn(found.startLsn)} on timeline ${found.timeline}`,
      );
      return { start: found.startLsn, timeline: found.timeline, archived: true };
    }
    const slot = this.options.slot;
    if (slot !== undefined && conn.serverVersionNum >= 150000) {
      const info = await readReplicationSlot(conn, slot);
      if (info === undefined)
        throw new ServerError({
          severity: "ERROR",
          code: "42704",
          message: `replication slot "${slot}" does not exist`,
        });
      if (info.slotType !== "physical") {
        throw new UsageError(
          `cannot use replication slot "${slot}": physical slot expected, got ${info.slotType}`,
        );
      }
      if (info.restartLsn !== undefined && info.restartTimeline !== undefined) {
        const start = segmentStartOf(info.restartLsn, size);
        this.log.info(
          { lsn: formatLsn(start), timeline: info.restartTimeline, slot },
          `starting at the slot's restart position ${formatLsn(info.restartLsn)}`,
        );
        return { start, timeline: info.restartTimeline, archived: false };
      }
    }
    const start = segmentStartOf(serverPosition, size);
    this.log.info(
      { lsn: formatLsn(start), timeline: serverTimeline },
      `starting at the server's position ${formatLsn(serverPosition)}`,
    );
    return { start, timeline: serverTimeline, archived: false };
  }

  private async ensureHistoryFile(conn: PgConnection, timeline: number): Promise<void> {
    const storage = this.storage!;
    if (timeline === 1 || (await storage.hasHistoryFile(timeline))) return;
    // timelineHistory checked the server's file name: only the computed one goes on to files and hooks.
    const history = await timelineHistory(conn, timeline);
    await storage.writeHistoryFile(timeline, history.content);
    const historyPath = path.join(this.options.directory, history.fileName);
    this.log.info({ timeline, file: history.fileName }, `wrote timeline history file "${history.fileName}"`);
    this.emit("history", { timeline, path: historyPath });
  }

  /** Streams one timeline until the server ends it, we stop, or an error. */
  private async streamTimeline(
    conn: PgConnection,
    timeline: number,
    start: Lsn,
    startIsDurable: boolean,
    onProgress: () => void,
  ): Promise<StreamEnd> {
    this.timeline = timeline;
    this.receivedLsn = this.writtenLsn = this.flushedLsn = start;
    this.exitReason = undefined;
    this.tickFailure = undefined;
    this.syncedOnStream = startIsDurable;
    await startReplication(conn, { slot: this.options.slot, start, timeline });
    this.log.info(
      { lsn: formatLsn(start), timeline },
      `starting log streaming at ${formatLsn(start)} (timeline ${timeline})`,
    );
    this.emit("streaming", { timeline, start });
    this.sendFeedback(conn);
    this.startStatusTimer(conn);
    try {
      while (!this.stopRequested) {
        const payloads = await conn.takeCopyData();
        if (this.idleTick) await this.idleTick;
        if (this.tickFailure !== undefined) throw this.tickFailure;
        if (payloads.length === 0) break; // CopyDone/error next, or stop() interrupted the wait
        this.inBatch = true;
        onProgress();
        const replyRequested = await this.processBatch(payloads);
        await this.afterBatch(conn, replyRequested);
        this.inBatch = false;
        if (this.exitReason || this.stopRequested) break;
      }
      this.stopStatusTimer();
      if (this.stopRequested || this.exitReason) {
        this.exitReason ??= "stopped";
        await this.closeFileAtStop();
        this.sendFeedback(conn);
        conn.sendCopyDone();
      } else {
        // The server ended the copy (end of timeline or shutdown): an incomplete segment stays .partial.
        await this.writePending();
        await this.closeFileAtStop();
      }
      const end = streamEndFromResults(await conn.finishCopy());
      if (this.exitReason) return { kind: "stopped" };
      return end;
    } finally {
      this.inBatch = false;
      this.stopStatusTimer();
    }
  }

  /**
   * Appends the batch's WAL to the current segment (views, no copies), rotating segments at their
   * boundaries. Returns whether a keepalive asked for an immediate reply.
   */
  private async processBatch(payloads: Buffer[]): Promise<boolean> {
    let replyRequested = false;
    const size = this.segmentSize;
    for (const payload of payloads) {
      const kind = payload[0];
      if (kind === XLOG_DATA) {
        const { start, end, data } = parseXLogData(payload);
        if (start !== this.receivedLsn) {
          throw new ProtocolError(
            `got WAL data offset ${formatLsn(start)}, expected ${formatLsn(this.receivedLsn)} (segment offset ${segmentOffsetOf(start, size)})`,
          );
        }
        if (end > this.serverEndLsn) this.serverEndLsn = end;
        let offset = 0;
        while (offset < data.length) {
          if (this.file === undefined) await this.openFile();
          const room = size - (this.file!.offset + this.pendingBytes);
          const take = Math.min(room, data.length - offset);
          this.pending.push(
            offset === 0 && take === data.length ? data : data.subarray(offset, offset + take),
          );
          this.pendingBytes += take;
          this.receivedLsn += BigInt(take);
          offset += take;
          if (take === room) await this.completeSegment();
        }
      } else if (kind === PRIMARY_KEEPALIVE) {
        const keepalive = parsePrimaryKeepalive(payload);
        if (keepalive.end > this.serverEndLsn) this.serverEndLsn = keepalive.end;
        if (keepalive.replyRequested) replyRequested = true;
      } else {
        throw new ProtocolError(
          `unrecognized streaming header: "${escapeControlCharacters(String.fromCharCode(kind ?? 0))}"`,
        );
      }
    }
    this.lastMessageAt = Date.now();
    await this.writePending();
    if (this.options.endpos !== undefined && this.writtenLsn >= this.options.endpos)
      this.exitReason = "endpos";
    return replyRequested;
  }

  /** Sync and feedback decisions once a batch is written. */
  private async afterBatch(conn: PgConnection, replyRequested: boolean): Promise<void> {
    const unflushed = this.flushedLsn < this.writtenLsn && this.file !== undefined;
    if (this.options.synchronous && unflushed) {
      await this.syncFile();
      this.sendFeedback(conn);
    } else if (replyRequested) {
      if (this.feedback.reportFlush && unflushed) await this.syncFile();
      this.sendFeedback(conn);
    } else if (this.feedback.isDue()) {
      await this.periodicStatus(conn);
    }
  }

  /**
   * Periodic update. Unlike pg_receivewal (which only advances flush at segment ends), the open
   * segment is fsynced first when flush is reported, so the slot follows us within one interval.
   */
  private async periodicStatus(conn: PgConnection): Promise<void> {
    if (this.feedback.reportFlush && this.file !== undefined && this.flushedLsn < this.writtenLsn) {
      await this.syncFile();
    }
    this.sendFeedback(conn);
  }

  private sendFeedback(conn: PgConnection): void {
    conn.sendRaw(this.feedback.message(this.writtenLsn, this.reportableFlush(), this.options.flushCap?.()));
  }

  /**
   * The start position counts as flushed only when the archive really holds everything before it
   * (resuming from the archive, or after a timeline switch). Starting from a slot's or the server's
   * position, flush is reported as 0 (which the server ignores) until the first fsync: pgwal does
   * not hold the WAL before it, and the server must never be told otherwise.
   */
  private reportableFlush(): Lsn {
    return this.syncedOnStream ? this.flushedLsn : INVALID_LSN;
  }

  private startStatusTimer(conn: PgConnection): void {
    this.stopStatusTimer();
    const interval = this.feedback.intervalMs;
    const stallMs = this.options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    this.lastMessageAt = Date.now();
    let askedForReply = false;
    // Silence only counts while we wait on the network: a slow disk pauses the socket on purpose.
    let busyUntil = Date.now();
    const tick = () => {
      if (this.inBatch || this.idleTick !== undefined || conn.queuedBytes > 0) busyUntil = Date.now();
      const silentMs = Date.now() - Math.max(this.lastMessageAt, busyUntil);
      if (silentMs < stallMs / 2) askedForReply = false;
      else if (silentMs >= stallMs) {
        conn.fail(
          new ConnectionError(
            `no message from the server for ${Math.round(silentMs / 1000)} s: connection considered dead`,
          ),
        );
        return;
      } else if (!askedForReply && !this.inBatch) {
        askedForReply = true;
        try {
          conn.sendRaw(
            this.feedback.message(this.writtenLsn, this.reportableFlush(), this.options.flushCap?.(), true),
          );
        } catch {
          return; // the connection is already gone; the streaming loop reports why
        }
      }
      if (interval <= 0 || this.inBatch || this.idleTick || !this.feedback.isDue()) return;
      this.idleTick = this.periodicStatus(conn)
        .catch((error: unknown) => {
          // Surface through the loop: drop the connection so the pending read fails.
          this.tickFailure = error;
          conn.interrupt();
        })
        .finally(() => {
          this.idleTick = undefined;
        });
    };
    this.statusTimer = setInterval(tick, Math.min(interval > 0 ? interval : 1000, 1000, stallMs / 4));
    this.statusTimer.unref();
  }

  private stopStatusTimer(): void {
    if (this.statusTimer) clearInterval(this.statusTimer);
    this.statusTimer = undefined;
  }

  private async openFile(): Promise<void> {
    const segNo = segmentNumberOf(this.receivedLsn, this.segmentSize);
    const name = walFileName(this.timeline, segNo, this.segmentSize);
    if (segmentOffsetOf(this.receivedLsn, this.segmentSize) !== 0) {
      throw new ProtocolError(
        `received write-ahead log record for offset ${segmentOffsetOf(this.receivedLsn, this.segmentSize)} with no file open`,
      );
    }
    this.file = await this.storage!.openSegment(name, this.segmentSize);
    this.fileStartLsn = this.receivedLsn;
    this.log.debug(
      { segment: name, lsn: formatLsn(this.receivedLsn), timeline: this.timeline },
      `opened segment ${name}`,
    );
  }

  private async writePending(): Promise<void> {
    if (this.pendingBytes === 0 || this.file === undefined) return;
    const chunks = this.pending;
    const bytes = this.pendingBytes;
    this.pending = [];
    this.pendingBytes = 0;
    await this.file.write(chunks, bytes);
    this.writtenLsn += BigInt(bytes);
  }

  private async syncFile(): Promise<void> {
    const started = performance.now();
    await this.file!.sync();
    this.emit("synced", { durationMs: performance.now() - started, segmentEnd: false });
    this.setFlushed(this.writtenLsn);
  }

  private setFlushed(lsn: Lsn): void {
    this.syncedOnStream = true;
    if (lsn <= this.flushedLsn) return;
    this.flushedLsn = lsn;
    this.emit("flushed", { lsn, timeline: this.timeline });
  }

  /** The segment is full: write it out, make it durable, give it its final name. */
  private async completeSegment(): Promise<void> {
    await this.writePending();
    const file = this.file!;
    this.file = undefined;
    const started = performance.now();
    await file.closeComplete();
    this.emit("synced", { durationMs: performance.now() - started, segmentEnd: true });
    this.setFlushed(this.writtenLsn);
    const event: SegmentCompletedEvent = {
      walFileName: file.walFileName,
      path: file.finalPath,
      timeline: this.timeline,
      startLsn: this.fileStartLsn,
      endLsn: this.writtenLsn,
    };
    this.log.info(
      { segment: file.walFileName, lsn: formatLsn(this.writtenLsn), timeline: this.timeline },
      `finished segment at ${formatLsn(this.writtenLsn)} (timeline ${this.timeline})`,
    );
    this.emit("segment", event);
  }

  /** Stop or end of timeline: what was written becomes durable; an incomplete segment stays .partial. */
  private async closeFileAtStop(): Promise<void> {
    await this.writePending();
    const file = this.file;
    this.file = undefined;
    if (file === undefined) return;
    await file.closePartial();
    this.setFlushed(this.writtenLsn);
  }
}

/** SQLSTATE undefined_file: START_REPLICATION asked for WAL the server has already recycled. */
const WAL_REMOVED = "58P01";

/**
 * Turns a failure into the typed error the loop decides on. Anything that is not a PgwalError is
 * a bug and is rethrown as is (never retried). WAL removed on the server is permanent: retrying
 * cannot bring it back, and a silent retry loop would hide a hole in the archive.
 */
function toPgwalError(error: unknown): PgwalError {
  if (!(error instanceof PgwalError)) throw error;
  if (error instanceof ServerError && error.code === WAL_REMOVED) {
    return new ArchiveError(
      `${error.message}: the server no longer has the WAL this archive needs next, so the archive has a gap. ` +
        "Take a new base backup, then start pgwal on an empty directory (or move the old archive aside); " +
        "use a replication slot (--slot) so the server keeps WAL until pgwal has it.",
      { cause: error },
    );
  }
  return error;
}
