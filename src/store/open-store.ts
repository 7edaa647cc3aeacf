import type { S3ObjectStore } from "./object-store.js";
import { createS3Client, type S3ClientSettings } from "./s3-client.js";
import { parseS3Url } from "./s3-location.js";

/** The store behind an s3:// URL, with the SDK loaded on this first use. */
export async function openObjectStore(
  url: string,
  settings: S3ClientSettings,
  env: NodeJS.ProcessEnv,
): Promise<S3ObjectStore> {
  const location = parseS3Url(url);
  const client = await createS3Client(settings, env);
  const { S3ObjectStore } = await import("./object-store.js");
  return new S3ObjectStore(client, location);
}
