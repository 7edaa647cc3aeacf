/**
 * An ArchiveSource over a bucket written by `pgwal receive --target`: the archive tools read the
 * same names there as in a directory. An object's body is decoded by the same bounded decoder as a
 * local file (decodeSegmentStream), so a decompression bomb in the bucket is cut off just as early.
 */
import { decodeSegmentStream } from "../archive/archive-file.js";
import { addToListing, emptyListing } from "../archive/archive-listing.js";
import type { ArchiveSource } from "../archive/archive-source.js";
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
  return {
    description: store.url,
    isDirectory: false,
    // Wrong keys, a missing bucket or a denied listing: an error, never "not in the archive".
    checkUsable: () => store.checkAccess(),
    async list() {
      const listing = emptyListing();
      const objects = (await store.list()).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
      for (const object of objects) addToListing(listing, object.name, object);
      return listing;
    },
    async readSegment(fileName, compression, partial, stopAfter) {
      const object = await store.getIfExists(fileName);
      if (object === undefined) return undefined;
      return decodeSegmentStream(object.body, `${store.url}/${fileName}`, compression, partial, stopAfter);
    },
    async readSmallFile(fileName, maxBytes) {
      const object = await store.getIfExists(fileName);
      if (object === undefined) return undefined;
      const tooLarge = () => new ArchiveError(`archived file "${fileName}" is larger than ${maxBytes} bytes`);
      const pieces: Buffer[] = [];
      let length = 0;
      try {
        if (object.size > maxBytes) throw tooLarge();
        // The announced size is the store's word; the bound holds on the bytes that arrive.
        for await (const piece of object.body as AsyncIterable<Buffer>) {
          pieces.push(piece);
          length += piece.byteLength;
          if (length > maxBytes) throw tooLarge();
        }
      } finally {
        object.body.destroy();
      }
      return Buffer.concat(pieces, length);
    },
  };
}
