import type { ArchiveSource } from "../archive/archive-source.js";

/**
 * What `restore`, `verify` and `status` read: a directory as is, or a bucket written by
 * `pgwal receive --target` for an s3:// URL (the S3 client is loaded only then). `close` releases
 * the store's connections.
 */
export async function openArchiveLocation(
  location: string,
  env: NodeJS.ProcessEnv,
): Promise<{ archive: string | ArchiveSource; close: () => void }> {
  if (!location.startsWith("s3://")) return { archive: location, close: () => undefined };
  const { openBucketSource } = await import("../store/bucket-source.js");
  const { source, close } = await openBucketSource(location, env);
  return { archive: source, close };
}
