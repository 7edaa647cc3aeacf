/**
 * `s3://BUCKET/PREFIX` targets. Pure: parsing a target never loads the S3 client.
 */
import { UsageError } from "../errors.js";

export interface S3Location {
  bucket: string;
  /** Key prefix without leading or trailing "/" ("" = the bucket's root). */
  prefix: string;
}

/** Bucket names as S3 allows them (3–63 of a-z, 0-9, ".", "-"); stricter stores accept a subset. */
const BUCKET_NAME = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;

export function isS3Url(text: string): boolean {
  return text.startsWith("s3://");
}

/** Parses `s3://BUCKET` or `s3://BUCKET/PREFIX`; throws a UsageError naming what is wrong. */
export function parseS3Url(text: string): S3Location {
  if (!isS3Url(text))
    throw new UsageError(`invalid object-store target "${text}": expected s3://BUCKET/PREFIX`);
  const rest = text.slice("s3://".length);
  const slash = rest.indexOf("/");
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const prefix = (slash < 0 ? "" : rest.slice(slash + 1)).replace(/^\/+|\/+$/g, "");
  if (!BUCKET_NAME.test(bucket)) {
    throw new UsageError(
      `invalid bucket name "${bucket}" in "${text}": 3-63 characters of a-z, 0-9, "." and "-"`,
    );
  }
  // Keys are built from this prefix and archive file names only: no empty, "." or ".." steps.
  const badStep = prefix.split("/").some((step) => step === "" || step === "." || step === "..");
  if (prefix !== "" && (badStep || !/^[\x20-\x7e]*$/.test(prefix) || prefix.includes("\\"))) {
    throw new UsageError(`invalid prefix in "${text}": use plain path segments separated by "/"`);
  }
  return { bucket, prefix };
}

/** The object key of an archive file name under the location's prefix. */
export function objectKey(location: S3Location, fileName: string): string {
  return location.prefix === "" ? fileName : `${location.prefix}/${fileName}`;
}

export function formatS3Url(location: S3Location): string {
  return `s3://${location.bucket}${location.prefix === "" ? "" : `/${location.prefix}`}`;
}
