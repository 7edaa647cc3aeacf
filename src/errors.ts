/**
 * Typed errors. Each carries what the CLI needs to print one clear line and pick an exit code,
 * and whether retrying (reconnecting) can help. Messages never contain passwords.
 */

export abstract class PgwalError extends Error {
  /** True when reconnecting later may succeed (network trouble, server restart). */
  abstract readonly retryable: boolean;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** The peer sent bytes that do not follow the protocol (or the framer met garbage). */
export class ProtocolError extends PgwalError {
  readonly retryable = true;
}

/** Could not reach a server: refused, timed out, DNS, TLS handshake. */
export class ConnectionError extends PgwalError {
  readonly retryable = true;
}

/** Authentication could not be completed on the client side (no password, unsupported method, bad server proof). */
export class AuthenticationError extends PgwalError {
  readonly retryable = false;
}

/** Fields of an ErrorResponse/NoticeResponse, keyed by their meaning. */
export interface ServerErrorFields {
  severity: string;
  code: string;
  message: string;
  detail?: string;
  hint?: string;
  position?: string;
  internalPosition?: string;
  internalQuery?: string;
  where?: string;
  schema?: string;
  table?: string;
  column?: string;
  dataType?: string;
  constraint?: string;
  file?: string;
  line?: string;
  routine?: string;
}

/**
 * SQLSTATE classes after which retrying cannot help without a human: 28 (invalid authorization,
 * e.g. wrong password or no pg_hba entry) and 42 (e.g. 42704, the slot does not exist).
 */
const PERMANENT_SQLSTATE_CLASSES = new Set(["28", "42"]);

/** An ErrorResponse from the server, with its SQLSTATE. */
export class ServerError extends PgwalError {
  readonly fields: ServerErrorFields;
  readonly code: string;
  readonly retryable: boolean;
  constructor(fields: ServerErrorFields) {
    super(fields.message);
    this.fields = fields;
    this.code = fields.code;
    this.retryable = !PERMANENT_SQLSTATE_CLASSES.has(fields.code.slice(0, 2));
  }
}

/** A file-system failure in the archive (open, write, fsync, rename, …). */
export class StorageError extends PgwalError {
  readonly retryable: boolean = true;
  readonly path: string;
  readonly operation: string;
  readonly errno?: string;
  constructor(operation: string, path: string, cause: unknown) {
    const errno = (cause as NodeJS.ErrnoException | undefined)?.code;
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`could not ${operation} file "${path}": ${reason}`, { cause });
    this.path = path;
    this.operation = operation;
    this.errno = errno;
  }
}

/**
 * An fsync of an archive file or directory failed. Never retried: after a failed fsync the kernel
 * may have dropped the unwritten pages (PostgreSQL's fsync lesson), so a retried fsync can succeed
 * without them and a rename may not survive a power cut. Nothing written since the last successful
 * fsync is reported, and the receiver stops instead of trusting the archive.
 */
export class FsyncError extends StorageError {
  override readonly retryable = false;
  constructor(operation: string, path: string, cause: unknown) {
    super(operation, path, cause);
    this.message = `${this.message}; stopping: WAL written since the last successful fsync may not be on disk (check the disk, then restart pgwal to stream it again)`;
  }
}

/** The archive or server is not in a state pgwal can safely continue from (other cluster, bad file). */
export class ArchiveError extends PgwalError {
  readonly retryable = false;
}

/**
 * A file name pgwal did not build was about to reach a shell command or a path (e.g. a hook's %f):
 * refused, and not retried, since it can only come from a hostile or broken peer or a bug.
 */
export class UnsafeFileNameError extends PgwalError {
  readonly retryable = false;
}

/** Invalid options or input from the user. */
export class UsageError extends PgwalError {
  readonly retryable = false;
}
