/**
 * Typed failures of the object store. The message is one line the CLI can print as is; whether the
 * uploader retries depends on `retryable`.
 */
import { PgwalError } from "../errors.js";

/** The store refused or could not be reached. Outages and 5xx are retryable; bad keys, a missing bucket and denials are not. */
export class ObjectStoreError extends PgwalError {
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The bucket already holds a different object under a name pgwal writes only once: another cluster
 * or another receiver wrote it. Never retried, never overwritten.
 */
export class ObjectConflictError extends PgwalError {
  readonly retryable = false;
}
