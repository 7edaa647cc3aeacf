/**
 * Self-test of the radosgw harness: the S3 behaviour the object-store tests rely on really holds on
 * the throwaway Ceph cluster test/support/rgw.ts starts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";
import {
  GetObjectCommand,
  HeadBucketCommand,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from "@aws-sdk/client-s3";
import { startSharedRgw } from "../support/rgw.js";

const rgw = await startSharedRgw();

function client(credentials = rgw.credentials): S3Client {
  return new S3Client({
    region: rgw.region,
    endpoint: rgw.endpoint,
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
  });
}

test("radosgw answers on 127.0.0.1 and start-up is reported", async () => {
  assert.match(rgw.endpoint, /^http:\/\/127\.0\.0\.1:29\d{3}$/);
  assert.ok(rgw.startupMs > 0);
  const rss = await rgw.residentBytes();
  assert.ok(rss > 10 * 1024 * 1024, `daemons use ${rss} bytes`);
  process.stderr.write(
    `[rgw selftest] ready in ${(rgw.startupMs / 1000).toFixed(1)} s, RSS ${(rss / 2 ** 20).toFixed(0)} MiB\n`,
  );
});

test("each createBucket is a new, empty bucket; objects round-trip with Content-MD5 and If-None-Match", async () => {
  const s3 = client();
  try {
    const first = await rgw.createBucket("selftest");
    const second = await rgw.createBucket("selftest");
    assert.notEqual(first, second);
    await s3.send(new HeadBucketCommand({ Bucket: first }));
    const body = Buffer.from("pgwal harness self-test");
    const md5 = createHash("md5").update(body).digest("base64");
    await s3.send(
      new PutObjectCommand({ Bucket: first, Key: "a", Body: body, ContentMD5: md5, IfNoneMatch: "*" }),
    );
    const got = await s3.send(new GetObjectCommand({ Bucket: first, Key: "a" }));
    assert.deepEqual(Buffer.from(await got.Body!.transformToByteArray()), body);
    await assert.rejects(
      s3.send(
        new PutObjectCommand({ Bucket: first, Key: "a", Body: body, ContentMD5: md5, IfNoneMatch: "*" }),
      ),
      (error: unknown) => error instanceof S3ServiceException && error.$metadata.httpStatusCode === 412,
    );
    const wrongMd5 = createHash("md5").update("other").digest("base64");
    await assert.rejects(
      s3.send(new PutObjectCommand({ Bucket: first, Key: "b", Body: body, ContentMD5: wrongMd5 })),
      (error: unknown) => error instanceof S3ServiceException && error.name === "BadDigest",
    );
  } finally {
    s3.destroy();
  }
});

test("another user cannot write into the test user's bucket; the gateway can be stopped and started", async () => {
  const bucket = await rgw.createBucket("selftest");
  const stranger = client(await rgw.createUser("selftest-stranger"));
  try {
    await assert.rejects(
      stranger.send(new PutObjectCommand({ Bucket: bucket, Key: "x", Body: "x" })),
      (error: unknown) => error instanceof S3ServiceException && error.$metadata.httpStatusCode === 403,
    );
  } finally {
    stranger.destroy();
  }
  await rgw.stopGateway();
  await assert.rejects(fetch(rgw.endpoint));
  await rgw.startGateway();
  const s3 = client();
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
  } finally {
    s3.destroy();
  }
});
