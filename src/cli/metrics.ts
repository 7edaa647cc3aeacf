/**
 * Prometheus metrics of a running `pgwal receive`, in a registry of its own (nothing global, so
 * a library user's default registry is left alone). Positions are read from the receiver when
 * scraped; counters and the fsync histogram are fed by its events.
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { SegmentHookRunner } from "../hooks/segment-hooks.js";
import type { WalReceiver } from "../receiver/receiver.js";
import type { WalUploader } from "../store/wal-uploader.js";

export interface ReceiverMetricsOptions {
  /** --status-interval in seconds: the health window is max(2 × it, 60 s). */
  statusIntervalSeconds: number;
  hooks?: SegmentHookRunner;
  /** The --target uploader. */
  uploader?: WalUploader;
  now?: () => number;
}

export interface HealthInput {
  streaming: boolean;
  /** Date.now() of the last message from the server; 0 = none yet. */
  lastMessageAt: number;
  statusIntervalSeconds: number;
  now: number;
}

export interface Health {
  healthy: boolean;
  reason: string;
}

/** Healthy while streaming and the server spoke within max(2 × status interval, 60 s). */
const HEALTHY_SILENCE_SECONDS = 60;

export function healthOf(input: HealthInput): Health {
  if (!input.streaming) return { healthy: false, reason: "not streaming" };
  // On an idle server the only messages are keepalives, which the receiver asks for after 30 s of
  // silence (half its 60 s dead-connection timeout): anything within 60 s is a live stream.
  const windowMs = Math.max(2 * input.statusIntervalSeconds, HEALTHY_SILENCE_SECONDS) * 1000;
  if (input.lastMessageAt === 0)
    return { healthy: false, reason: "streaming, but no message from the server yet" };
  const ageMs = input.now - input.lastMessageAt;
  if (ageMs > windowMs) {
    return {
      healthy: false,
      reason: `last message from the server ${(ageMs / 1000).toFixed(1)} s ago (limit ${windowMs / 1000} s)`,
    };
  }
  return { healthy: true, reason: `streaming, last message ${(ageMs / 1000).toFixed(1)} s ago` };
}

/** fsync latencies span ~50 µs (NVMe, page cache) to seconds (busy network storage). */
const FSYNC_BUCKETS_SECONDS = [
  0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

export class ReceiverMetrics {
  readonly registry = new Registry();
  private streaming = false;
  private readonly now: () => number;

  constructor(
    private readonly receiver: WalReceiver,
    private readonly options: ReceiverMetricsOptions,
  ) {
    this.now = options.now ?? Date.now;
    const registers = [this.registry];
    const position = (name: string, help: string, read: (p: WalReceiver["positions"]) => bigint) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(Number(read(receiver.positions)));
        },
      });
    position(
      "pgwal_received_lsn_bytes",
      "End of WAL received from the server, as a byte position",
      (p) => p.received,
    );
    position(
      "pgwal_written_lsn_bytes",
      "End of WAL handed to the operating system, as a byte position",
      (p) => p.written,
    );
    position(
      "pgwal_flushed_lsn_bytes",
      "End of WAL known durable (fsynced), as a byte position",
      (p) => p.flushed,
    );
    position(
      "pgwal_server_end_lsn_bytes",
      "Latest end of WAL reported by the server, as a byte position",
      (p) => p.serverEnd,
    );
    position(
      "pgwal_lag_bytes",
      "Bytes the server has that are not yet durable here (server end - flushed)",
      (p) => (p.serverEnd > p.flushed ? p.serverEnd - p.flushed : 0n),
    );
    new Gauge({
      name: "pgwal_timeline",
      help: "Timeline being streamed",
      registers,
      collect() {
        this.set(receiver.positions.timeline);
      },
    });
    const now = this.now;
    new Gauge({
      name: "pgwal_last_message_age_seconds",
      help: "Seconds since the last message from the server (-1 before the first one)",
      registers,
      collect() {
        const at = receiver.positions.lastMessageAt;
        this.set(at === 0 ? -1 : Math.max(0, (now() - at) / 1000));
      },
    });
    const self = this;
    new Gauge({
      name: "pgwal_streaming",
      help: "1 while a replication stream is open, else 0",
      registers,
      collect() {
        this.set(self.streaming ? 1 : 0);
      },
    });
    const segments = new Counter({
      name: "pgwal_segments_completed_total",
      help: "WAL segments completed (fsynced and renamed to their final name)",
      registers,
    });
    const reconnects = new Counter({
      name: "pgwal_reconnects_total",
      help: "Connection losses after which the receiver reconnects",
      registers,
    });
    const backoff = new Gauge({
      name: "pgwal_reconnect_delay_seconds",
      help: "Delay before the pending reconnect attempt (0 while connected)",
      registers,
    });
    const fsync = new Histogram({
      name: "pgwal_fsync_duration_seconds",
      help: "Duration of each fsync of WAL (with the rename at a segment end)",
      labelNames: ["kind"],
      buckets: FSYNC_BUCKETS_SECONDS,
      registers,
    });
    const hooks = options.hooks;
    if (hooks !== undefined) {
      const failures = new Counter({
        name: "pgwal_hook_failures_total",
        help: "Failed runs of the --on-segment hook (each is retried)",
        registers,
      });
      hooks.on("failed", () => failures.inc());
      new Gauge({
        name: "pgwal_hook_pending_files",
        help: "Completed files waiting for the --on-segment hook",
        registers,
        collect() {
          this.set(hooks.pendingCount);
        },
      });
    }
    if (options.uploader !== undefined) registerUploadMetrics(options.uploader, registers);

    receiver.on("streaming", () => {
      this.streaming = true;
      backoff.set(0);
    });
    receiver.on("disconnected", (event) => {
      this.streaming = false;
      if (event.retryInMs !== undefined) {
        reconnects.inc();
        backoff.set(event.retryInMs / 1000);
      }
    });
    receiver.on("segment", () => segments.inc());
    // `synced` reports each fsync's duration; guarded so an older receiver without it still works.
    receiver.on("synced", (event) => {
      const ms = event?.durationMs;
      if (typeof ms === "number")
        fsync.observe({ kind: event?.segmentEnd ? "segment_end" : "flush" }, ms / 1000);
    });
  }

  /** The receiver has stopped for good (health turns 503). */
  markStopped(): void {
    this.streaming = false;
  }

  health(): Health {
    return healthOf({
      streaming: this.streaming,
      lastMessageAt: this.receiver.positions.lastMessageAt,
      statusIntervalSeconds: this.options.statusIntervalSeconds,
      now: this.now(),
    });
  }
}

/** What the --target uploader has done and owes; gauges are read from it when scraped. */
function registerUploadMetrics(uploader: WalUploader, registers: Registry[]): void {
  const gauge = (name: string, help: string, read: () => number) =>
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  const files = new Counter({
    name: "pgwal_upload_files_total",
    help: "Uploads confirmed in the object store (kind: complete file, or .partial replaced)",
    labelNames: ["kind"],
    registers,
  });
  const bytes = new Counter({
    name: "pgwal_upload_bytes_total",
    help: "Bytes of the uploads confirmed in the object store",
    labelNames: ["kind"],
    registers,
  });
  uploader.on("uploaded", (event) => {
    const kind = event.outcome === "partial" ? "partial" : "complete";
    files.inc({ kind });
    bytes.inc({ kind }, event.bytes);
  });
  const failures = new Counter({
    name: "pgwal_upload_failures_total",
    help: "Failed upload attempts (each is retried)",
    registers,
  });
  uploader.on("failed", () => failures.inc());
  gauge(
    "pgwal_upload_pending_files",
    "Complete files waiting for their upload (the local spool)",
    () => uploader.stats.pendingFiles,
  );
  gauge(
    "pgwal_upload_pending_bytes",
    "Bytes of complete files waiting for their upload",
    () => uploader.stats.pendingBytes,
  );
  gauge(
    "pgwal_upload_last_success_timestamp_seconds",
    "Unix time of the last successful upload (0 = none yet)",
    () => uploader.stats.lastSuccessAt / 1000,
  );
  gauge(
    "pgwal_upload_held_lsn_bytes",
    "End of WAL wholly in the object store, as a byte position (the slot is held here with --upload-holds-slot)",
    () => Number(uploader.holdPosition),
  );
}
