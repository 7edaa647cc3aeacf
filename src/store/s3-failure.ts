/**
 * One line for a failed S3 request, built only from what pgwal can trust: the operation, the HTTP
 * status, the S3 error code when it looks like one, and the local network error code. The store's
 * free-text message is never printed.
 */
import type { S3Location } from "./s3-location.js";
import { ObjectStoreError } from "./store-errors.js";

const CREDENTIAL_CODES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "InvalidToken",
  "ExpiredToken",
  "TokenRefreshRequired",
]);

export function describeS3Failure(error: unknown, what: string, location: S3Location): ObjectStoreError {
  const e = error as { name?: unknown; code?: unknown; $metadata?: { httpStatusCode?: number } } | undefined;
  const status = e?.$metadata?.httpStatusCode;
  const name = typeof e?.name === "string" && /^[A-Za-z][A-Za-z0-9]{0,63}$/.test(e.name) ? e.name : "Error";
  const bucket = `s3://${location.bucket}`;
  if (name === "CredentialsProviderError") {
    return new ObjectStoreError(
      `could not ${what}: no AWS credentials found (environment, AWS_PROFILE and ~/.aws, web identity, container or instance metadata)`,
      false,
      { cause: error },
    );
  }
  // The SDK's own (local) message when neither AWS_REGION nor the profile names a region.
  if (status === undefined && error instanceof Error && /^Region is missing/.test(error.message)) {
    return new ObjectStoreError(
      `could not ${what}: no AWS region (set AWS_REGION or the profile's region)`,
      false,
      {
        cause: error,
      },
    );
  }
  if (CREDENTIAL_CODES.has(name)) {
    return new ObjectStoreError(
      `could not ${what}: the object store rejected the credentials (${name})`,
      false,
      { cause: error },
    );
  }
  if (name === "NoSuchBucket") {
    return new ObjectStoreError(`could not ${what}: bucket ${bucket} does not exist`, false, {
      cause: error,
    });
  }
  if (name === "AccessDenied" || status === 403) {
    return new ObjectStoreError(
      `could not ${what}: access denied (${name === "Error" ? "HTTP 403" : name})`,
      false,
      { cause: error },
    );
  }
  if (status === undefined) {
    const code = typeof e?.code === "string" && /^[A-Z][A-Z0-9_]{1,40}$/.test(e.code) ? e.code : name;
    return new ObjectStoreError(`could not ${what}: object store unreachable (${code})`, true, {
      cause: error,
    });
  }
  // 5xx, throttling, timeouts and a BadDigest (the file changed while it was read) pass with time.
  const retryable =
    status >= 500 || status === 408 || status === 429 || name === "BadDigest" || name === "RequestTimeout";
  return new ObjectStoreError(
    `could not ${what}: ${name === "Error" ? "" : `${name}, `}HTTP ${status}`,
    retryable,
    { cause: error },
  );
}
