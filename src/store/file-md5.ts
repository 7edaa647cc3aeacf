import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";

/** MD5 of the first `length` bytes of a file, read as a stream (never the whole file in memory). */
export async function fileMd5(path: string, length: number): Promise<Buffer> {
  const hash = createHash("md5");
  if (length > 0) {
    for await (const chunk of createReadStream(path, { start: 0, end: length - 1, highWaterMark: 1 << 20 }))
      hash.update(chunk as Buffer);
  }
  return hash.digest();
}
