/**
 * pgwal as a library, for backup pipelines: a WAL receiver with typed events, the replication
 * connection and commands it is built on, and the archive helpers.
 */

export { formatPgTime, type PgTime, parsePgTime } from "./archive/pg-time.js";
export {
  decideRecoveryTarget,
  type RecoveryTarget,
  type TargetDecision,
  type TargetReason,
  type TimelineTimes,
  timelineTimes,
} from "./archive/recovery-target.js";
export { restoreFile } from "./archive/restore.js";
export { archiveStatus } from "./archive/status.js";
export { checkRecoveryTarget, type TargetCheck } from "./archive/target-check.js";
export {
  archiveTimeMap,
  defaultTimeMapFile,
  type TimeMap,
  type TimeMapOptions,
  type TimeMapResult,
  type TimeMapSegment,
} from "./archive/time-map.js";
export { verifyArchive } from "./archive/verify.js";
export {
  type RecordProblem,
  type RecordVerifyOptions,
  type RecordVerifyReport,
  verifyArchiveRecords,
} from "./archive/verify-records.js";
export {
  createPhysicalSlot,
  dropSlot,
  identifySystem,
  readReplicationSlot,
  type SystemIdentity,
  timelineHistory,
} from "./connection/commands.js";
export { type ConnectOptions, PgConnection } from "./connection/connection.js";
export {
  type ConnectionSettings,
  parseConnectionString,
  resolveConnectionSettings,
  type SettingsSources,
} from "./connection/conninfo.js";
export {
  ArchiveError,
  AuthenticationError,
  ConnectionError,
  FsyncError,
  PgwalError,
  ProtocolError,
  ServerError,
  StorageError,
  UsageError,
} from "./errors.js";
export {
  defaultHookStateFile,
  type HookEvents,
  type SegmentHookOptions,
  SegmentHookRunner,
  substituteHookCommand,
} from "./hooks/segment-hooks.js";
export { formatLsn, type Lsn, parseLsn } from "./lsn.js";
export type { ReceiverLogger } from "./receiver/logger.js";
export {
  type ReceiverEvents,
  type ReceiverExit,
  type ReceiverOptions,
  type SegmentCompletedEvent,
  WalReceiver,
} from "./receiver/receiver.js";
export { findStreamingStart } from "./wal/archive-scan.js";
export { type CompressionSpec, parseCompressionSpec } from "./wal/compression.js";
export { historyFileName, parseWalFileName, walFileName } from "./wal/names.js";
export { WalChunkFeeder } from "./wal/records/chunk-feeder.js";
export type { WalRecordEvent } from "./wal/records/record-events.js";
export type { WalReadStop, WalRecordProblem } from "./wal/records/record-problem.js";
export { WalRecordReader, type WalRecordReaderOptions } from "./wal/records/record-reader.js";
