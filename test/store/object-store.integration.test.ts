/**
 * The object-store layer against a real S3 implementation (Ceph RGW from test/support/rgw.ts):
 * write-once complete files, in-place partials, listing, and one clear typed error for each way the
 * store can refuse.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, open as openFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import type { S3ObjectStore } from "../../src/store/object-store.js";
import { openObjectStore } from "../../src/store/open-store.js";
import { resolveS3Settings, type S3ClientSettings } from "../../src/store/s3-client.js";
import { ObjectConflictError, ObjectStoreError } from "../../src/store/store-errors.js";
import { startSharedRgw } from "../support/rgw.js";

const rgw = await startSharedRgw();
await mkdir("/tmp/h-s3", { recursive: true }).catch(() => undefined);
const dir = await mkdtemp("/tmp/pgwal-store-test-");
after(() => rm(dir, { recursive: true, force: true }));

const stores: S3ObjectStore[] = [];
after(() => {
  for (const store of stores) store.destroy();
});

async function open(url: string, settings: S3ClientSettings = {}): Promise<S3ObjectStore> {
  const store = await openObjectStore(url, { credentials: rgw.credentials, ...settings }, rgw.awsEnv());
  stores.push(store);
  return store;
}

async function file(name: string, bytes: Buffer): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, bytes);
  return path;
}

async function read(store: S3ObjectStore, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.get(name)) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test("settings: a custom endpoint from AWS_ENDPOINT_URL_S3 means path-style unless overridden", () => {
  const env = { AWS_ENDPOINT_URL_S3: "http://127.0.0.1:9000" };
  assert.deepEqual(resolveS3Settings({}, env), {
    endpoint: "http://127.0.0.1:9000",
    forcePathStyle: true,
    region: "us-east-1",
  });
  assert.equal(resolveS3Settings({ addressing: "virtual" }, env).forcePathStyle, false);
  assert.deepEqual(resolveS3Settings({}, { AWS_REGION: "eu-west-3" }), {
    endpoint: undefined,
    forcePathStyle: false,
    region: "eu-west-3",
  });
  assert.equal(
    resolveS3Settings({ endpoint: "https://s3.example.net" }, env).endpoint,
    "https://s3.example.net",
  );
  assert.throws(() => resolveS3Settings({ endpoint: "ftp://x" }, {}), /invalid S3 endpoint/);
});

test("a complete file is written once: identical bytes again are done, different bytes are a conflict", async () => {
  const bucket = await rgw.createBucket("store");
  const store = await open(`s3://${bucket}/cluster-a/wal`);
  const bytes = randomBytes(300_000);
  const path = await file("seg-1", bytes);
  assert.equal(await store.putComplete("000000010000000000000001", path, bytes.length), "created");
  assert.equal(await store.putComplete("000000010000000000000001", path, bytes.length), "already-identical");
  const other = Buffer.from(bytes);
  other[1000] = (other[1000] ?? 0) ^ 1;
  const otherPath = await file("seg-1-other", other);
  await assert.rejects(
    store.putComplete("000000010000000000000001", otherPath, other.length),
    (error: unknown) =>
      error instanceof ObjectConflictError &&
      /another cluster or receiver wrote a different "000000010000000000000001"/.test(error.message) &&
      !error.retryable,
  );
  assert.deepEqual(await read(store, "000000010000000000000001"), bytes);
  assert.deepEqual(
    (await store.list()).map(({ name, size }) => ({ name, size })),
    [{ name: "000000010000000000000001", size: bytes.length }],
  );
});

test("a .partial is replaced in place, and only the first `size` bytes of the file are sent", async () => {
  const bucket = await rgw.createBucket("store");
  const store = await open(`s3://${bucket}`);
  const bytes = randomBytes(100_000);
  const path = await file("partial", bytes);
  await store.putReplace("000000010000000000000002.partial", path, 40_000);
  assert.deepEqual(await read(store, "000000010000000000000002.partial"), bytes.subarray(0, 40_000));
  await store.putReplace("000000010000000000000002.partial", path, 100_000);
  assert.deepEqual(await read(store, "000000010000000000000002.partial"), bytes);
  await store.delete("000000010000000000000002.partial");
  assert.deepEqual(await store.list(), []);
});

test("a 64 MiB file is streamed, not held in memory", async () => {
  const bucket = await rgw.createBucket("store");
  const store = await open(`s3://${bucket}/big`);
  const size = 64 * 1024 * 1024;
  const path = join(dir, "big");
  // Written a MiB at a time, so that no 64 MiB buffer of the test's own is alive during the upload.
  const file = await openFile(path, "w");
  for (let written = 0; written < size; written += 1 << 20) await file.write(randomBytes(1 << 20));
  await file.close();
  // Buffer memory, not RSS: RSS also moves with the allocator and the garbage collector's timing.
  const before = process.memoryUsage().arrayBuffers;
  let peak = before;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
  }, 5);
  try {
    assert.equal(await store.putComplete("00000001000000000000000A", path, size), "created");
  } finally {
    clearInterval(sampler);
  }
  // Holding the file would add all of it at once; streaming adds reads that are garbage the moment
  // they are sent, which the collector frees on its own schedule (up to half the file seen).
  assert.ok(peak - before < size, `buffer memory grew by ${((peak - before) / 2 ** 20).toFixed(1)} MiB`);
  assert.deepEqual(
    (await store.list()).map(({ name, size }) => ({ name, size })),
    [{ name: "00000001000000000000000A", size }],
  );
});

test("bad keys, a missing bucket, a denied PUT and a stopped gateway: one typed line each", async () => {
  const bucket = await rgw.createBucket("store");
  const path = await file("small", Buffer.from("x"));
  const wrongKeys = await open(`s3://${bucket}`, {
    credentials: { accessKeyId: rgw.credentials.accessKeyId, secretAccessKey: "wrong-secret" },
  });
  await assert.rejects(wrongKeys.checkAccess(), (error: unknown) => {
    assert.ok(error instanceof ObjectStoreError);
    assert.match(
      error.message,
      /^could not list s3:\/\/.+: the object store rejected the credentials \(SignatureDoesNotMatch\)$/,
    );
    assert.equal(error.retryable, false);
    return true;
  });
  const unknownKey = await open(`s3://${bucket}`, {
    credentials: { accessKeyId: "PGWALNOSUCHKEY", secretAccessKey: "whatever" },
  });
  await assert.rejects(unknownKey.checkAccess(), /rejected the credentials \(InvalidAccessKeyId\)$/);
  // AWS itself (no endpoint) without a region: said so, not taken for an outage.
  const { describeS3Failure } = await import("../../src/store/s3-failure.js");
  const noRegion = describeS3Failure(new Error("Region is missing"), "list s3://b", {
    bucket: "b",
    prefix: "",
  });
  assert.equal(
    noRegion.message,
    "could not list s3://b: no AWS region (set AWS_REGION or the profile's region)",
  );
  assert.equal(noRegion.retryable, false);
  const missing = await open("s3://pgwal-no-such-bucket/wal");
  await assert.rejects(missing.checkAccess(), (error: unknown) => {
    assert.ok(error instanceof ObjectStoreError);
    assert.equal(
      error.message,
      "could not list s3://pgwal-no-such-bucket/wal: bucket s3://pgwal-no-such-bucket does not exist",
    );
    assert.equal(error.retryable, false);
    return true;
  });
  const stranger = await open(`s3://${bucket}`, { credentials: await rgw.createUser(`stranger-${bucket}`) });
  await assert.rejects(stranger.putComplete("000000010000000000000001", path, 1), (error: unknown) => {
    assert.ok(error instanceof ObjectStoreError);
    assert.match(
      error.message,
      /^could not write s3:\/\/.+\/000000010000000000000001: access denied \(AccessDenied\)$/,
    );
    assert.equal(error.retryable, false);
    return true;
  });
  const store = await open(`s3://${bucket}`, { maxAttempts: 1 });
  await rgw.stopGateway();
  try {
    await assert.rejects(store.putComplete("000000010000000000000001", path, 1), (error: unknown) => {
      assert.ok(error instanceof ObjectStoreError);
      assert.match(error.message, /object store unreachable \(ECONNREFUSED\)$/);
      assert.equal(error.retryable, true);
      return true;
    });
  } finally {
    await rgw.startGateway();
  }
  assert.equal(await store.putComplete("000000010000000000000001", path, 1), "created");
});
