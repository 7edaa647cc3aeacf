/**
 * The operations pgwal needs from an S3 bucket, with the write-once rule of the archive: a complete
 * segment or history file is created with If-None-Match: *, and if the name is taken, the stored
 * object must be byte-identical (size + MD5) or the upload fails with ObjectConflictError. A
 * `.partial` is replaced in place. Bodies are streamed from the file with Content-MD5, one PUT each
 * (S3 takes up to 5 GiB in one PUT and a segment is at most 1 GiB; RGW ignores If-None-Match on
 * CompleteMultipartUpload, so multipart would lose the write-once rule).
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import type { Readable } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { fileMd5 } from "./file-md5.js";
import { describeS3Failure } from "./s3-failure.js";
import { formatS3Url, objectKey, type S3Location } from "./s3-location.js";
import { ObjectConflictError } from "./store-errors.js";

export type PutOutcome = "created" | "already-identical";

export interface RequestOptions {
  /** Aborts the request (the uploader's stop). */
  signal?: AbortSignal;
}

export interface StoredObject {
  name: string;
  size: number;
  /** Last-Modified, in ms since the epoch. */
  mtimeMs: number;
}

export class S3ObjectStore {
  private sdk: typeof import("@aws-sdk/client-s3") | undefined;

  constructor(
    private readonly client: S3Client,
    readonly location: S3Location,
  ) {}

  get url(): string {
    return formatS3Url(this.location);
  }

  private async commands(): Promise<typeof import("@aws-sdk/client-s3")> {
    this.sdk ??= await import("@aws-sdk/client-s3");
    return this.sdk;
  }

  /** Fails with one clear line when the keys are wrong, the bucket is missing or listing is denied. */
  async checkAccess(): Promise<void> {
    const { ListObjectsV2Command } = await this.commands();
    const prefix = this.location.prefix === "" ? undefined : `${this.location.prefix}/`;
    await this.call(`list ${this.url}`, () =>
      this.client.send(
        new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: prefix, MaxKeys: 1 }),
      ),
    );
  }

  /**
   * Writes a complete archive file once. If the name exists, compares: identical bytes count as done
   * (a restart, or another receiver of the same cluster), different bytes are an ObjectConflictError.
   */
  async putComplete(
    fileName: string,
    path: string,
    size: number,
    options: RequestOptions = {},
  ): Promise<PutOutcome> {
    const md5 = await fileMd5(path, size);
    const created = await this.put(fileName, path, size, md5, true, options);
    if (created) return "created";
    if (await this.holdsIdentical(fileName, size, md5, options)) return "already-identical";
    throw new ObjectConflictError(
      `another cluster or receiver wrote a different "${fileName}" to ${this.url}; refusing to overwrite it`,
    );
  }

  /** Writes (or replaces) an object with the first `size` bytes of a file: the `.partial`. */
  async putReplace(
    fileName: string,
    path: string,
    size: number,
    options: RequestOptions = {},
  ): Promise<void> {
    const md5 = await fileMd5(path, size);
    await this.put(fileName, path, size, md5, false, options);
  }

  /** The object's bytes as a stream. */
  async get(fileName: string, options: RequestOptions = {}): Promise<Readable> {
    const { GetObjectCommand } = await this.commands();
    const key = objectKey(this.location, fileName);
    const response = await this.call(`read ${this.url}/${fileName}`, () =>
      this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: key }), {
        abortSignal: options.signal,
      }),
    );
    return response.Body as Readable;
  }

  /** The object's bytes and size, or undefined when there is no such object. */
  async getIfExists(
    fileName: string,
    options: RequestOptions = {},
  ): Promise<{ body: Readable; size: number } | undefined> {
    const { GetObjectCommand } = await this.commands();
    const key = objectKey(this.location, fileName);
    try {
      const response = await this.client.send(
        new GetObjectCommand({ Bucket: this.location.bucket, Key: key }),
        {
          abortSignal: options.signal,
        },
      );
      return { body: response.Body as Readable, size: response.ContentLength ?? 0 };
    } catch (error) {
      if (statusOf(error) === 404 && (error as { name?: unknown }).name === "NoSuchKey") return undefined;
      throw describeS3Failure(error, `read ${this.url}/${fileName}`, this.location);
    }
  }

  /** Archive files under the prefix (names relative to it, no deeper "directories"), with sizes. */
  async list(): Promise<StoredObject[]> {
    const { ListObjectsV2Command } = await this.commands();
    const prefix = this.location.prefix === "" ? "" : `${this.location.prefix}/`;
    const found: StoredObject[] = [];
    let token: string | undefined;
    do {
      const page = await this.call(`list ${this.url}`, () =>
        this.client.send(
          new ListObjectsV2Command({
            Bucket: this.location.bucket,
            Prefix: prefix === "" ? undefined : prefix,
            Delimiter: "/",
            ContinuationToken: token,
          }),
        ),
      );
      for (const object of page.Contents ?? []) {
        if (object.Key === undefined) continue;
        found.push({
          name: object.Key.slice(prefix.length),
          size: object.Size ?? 0,
          mtimeMs: object.LastModified?.getTime() ?? 0,
        });
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return found;
  }

  async delete(fileName: string): Promise<void> {
    const { DeleteObjectCommand } = await this.commands();
    await this.call(`delete ${this.url}/${fileName}`, () =>
      this.client.send(
        new DeleteObjectCommand({ Bucket: this.location.bucket, Key: objectKey(this.location, fileName) }),
      ),
    );
  }

  destroy(): void {
    this.client.destroy();
  }

  /** PUT from the file; resolves false when If-None-Match: * found the name taken (412). */
  private async put(
    fileName: string,
    path: string,
    size: number,
    md5: Buffer,
    once: boolean,
    options: RequestOptions,
  ): Promise<boolean> {
    const { PutObjectCommand } = await this.commands();
    const key = objectKey(this.location, fileName);
    // A fresh stream per attempt: the SDK is told to try once, the uploader retries with backoff.
    const body =
      size > 0 ? createReadStream(path, { start: 0, end: size - 1, highWaterMark: 1 << 20 }) : undefined;
    try {
      await this.call(
        `write ${this.url}/${fileName}`,
        () =>
          this.client.send(
            new PutObjectCommand({
              Bucket: this.location.bucket,
              Key: key,
              Body: body ?? Buffer.alloc(0),
              ContentLength: size,
              ContentMD5: md5.toString("base64"),
              ...(once ? { IfNoneMatch: "*" } : {}),
            }),
            { abortSignal: options.signal },
          ),
        { preconditionFailed: once },
      );
      return true;
    } catch (error) {
      if (error === PRECONDITION_FAILED) return false;
      throw error;
    } finally {
      body?.destroy();
    }
  }

  /** Same size and same MD5 (from the ETag of a single-part object, else by reading it). */
  private async holdsIdentical(
    fileName: string,
    size: number,
    md5: Buffer,
    options: RequestOptions,
  ): Promise<boolean> {
    const { HeadObjectCommand } = await this.commands();
    const key = objectKey(this.location, fileName);
    const head = await this.call(`read ${this.url}/${fileName}`, () =>
      this.client.send(new HeadObjectCommand({ Bucket: this.location.bucket, Key: key }), {
        abortSignal: options.signal,
      }),
    );
    if (head.ContentLength !== size) return false;
    const etag = head.ETag?.replaceAll('"', "").toLowerCase();
    if (etag !== undefined && /^[0-9a-f]{32}$/.test(etag)) return etag === md5.toString("hex");
    const hash = createHash("md5");
    for await (const chunk of await this.get(fileName, options)) hash.update(chunk as Buffer);
    return hash.digest().equals(md5);
  }

  /** Runs one request and turns SDK failures into ObjectStoreError (one line, retryable or not). */
  private async call<T>(
    what: string,
    request: () => Promise<T>,
    options: { preconditionFailed?: boolean } = {},
  ): Promise<T> {
    try {
      return await request();
    } catch (error) {
      if (options.preconditionFailed && statusOf(error) === 412) throw PRECONDITION_FAILED;
      throw describeS3Failure(error, what, this.location);
    }
  }
}

const PRECONDITION_FAILED = Symbol("precondition failed");

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}
