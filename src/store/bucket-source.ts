/**
 * An ArchiveSource over a bucket written by `pgwal receive --target`: the archive tools read the
 * same names there as in a directory. An object is fetched into a private temporary file under its
 * own name, so it is decoded by exactly the code that decodes local archive files.
 */
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { addToListing, emptyListing } from "../archive/archive-listing.js";
import type { ArchiveSource } from "../archive/archive-source.js";
import { readArchiveContent, readArchivePrefix } from "../archive/segment-content.js";
import { ArchiveError } from "../errors.js";
import type { S3ObjectStore } from "./object-store.js";
import { openObjectStore } from "./open-store.js";

/** The bucket behind an s3:// URL as an archive source, with settings from the environment (AWS_*). */
export async function openBucketSource(
  url: string,
  env: NodeJS.ProcessEnv,
): Promise<{ source: ArchiveSource; close: () => void }> {
  const store = await openObjectStore(url, {}, env);
  return { source: bucketSource(store), close: () => store.destroy() };
}

export function bucketSource(store: S3ObjectStore): ArchiveSource {
  /** Fetches the object to a private temp file under its own name and reads it with `read`. */
  const viaTempFile = async (name: string, read: (file: string) => Promise<Buffer | undefined>) => {
    const object = await store.getIfExists(name);
    if (object === undefined) return undefined;
    const dir = await mkdtemp(path.join(tmpdir(), "pgwal-object-"));
    try {
      const file = path.join(dir, name);
      await pipeline(object.body, createWriteStream(file, { mode: 0o600 }));
      return await read(file);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
  return {
    description: store.url,
    readContent: (name, limit) => viaTempFile(name, (file) => readArchiveContent(file, limit)),
    readPrefix: (name, length) => viaTempFile(name, (file) => readArchivePrefix(file, length)),
    async list() {
      const listing = emptyListing();
      const objects = (await store.list()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const object of objects) addToListing(listing, object.name, object);
      return listing;
    },
    async readSmallFile(name, maxBytes) {
      const object = await store.getIfExists(name);
      if (object === undefined) return undefined;
      if (object.size > maxBytes) {
        object.body.destroy();
        throw new ArchiveError(`archived file "${name}" is too large (${object.size} bytes)`);
      }
      const chunks: Buffer[] = [];
      for await (const chunk of object.body) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    },
  };
}
