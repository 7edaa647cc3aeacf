/**
 * `pgwal restore %f %p --directory s3://…`: the restore_command reads a bucket written by
 * `pgwal receive --target` with the exit codes it has for a directory.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { gzipSync } from "node:zlib";
import { bucketSource } from "../../src/store/bucket-source.js";
import { openObjectStore } from "../../src/store/open-store.js";
import {
  SYNTHETIC_SEGMENT_SIZE,
  syntheticName,
  syntheticSegment,
  writeBomb,
} from "../archive/synthetic-wal.js";
import { runPgwal } from "../cli/cli-harness.js";
import { startSharedRgw } from "../support/rgw.js";

const rgw = await startSharedRgw();
const work = await mkdtemp("/tmp/pgwal-restore-s3-");
after(() => rm(work, { recursive: true, force: true }));

// Segments restored from a bucket, .partial included, are proved by test/e2e/pitr-bucket.integration.test.ts.
test("restore from s3://: a history file is restored; a missing segment exits 1 silently; a missing bucket exits 128 with one line", async () => {
  const bucket = await rgw.createBucket("restore");
  const url = `s3://${bucket}/wal`;
  const store = await openObjectStore(url, { credentials: rgw.credentials }, rgw.awsEnv());
  const history = "1\t0/3000000\tno recovery target specified\n";
  const source = join(work, "00000002.history");
  await writeFile(source, history);
  await store.putComplete("00000002.history", source, Buffer.byteLength(history));
  store.destroy();
  const env = { HOME: work, ...rgw.awsEnv() };

  const restored = await runPgwal(
    ["restore", "00000002.history", join(work, "out.history"), "--directory", url],
    {
      env,
    },
  );
  assert.equal(restored.status, 0, restored.stderr);
  assert.equal(await readFile(join(work, "out.history"), "utf8"), history);

  const missing = await runPgwal(
    ["restore", "000000020000000000000009", join(work, "seg"), "--directory", url],
    {
      env,
    },
  );
  assert.equal(missing.status, 1);
  assert.equal(missing.stderr, "");

  const noBucket = await runPgwal(
    ["restore", "000000020000000000000009", join(work, "seg"), "--directory", "s3://pgwal-absent/wal"],
    { env },
  );
  assert.equal(noBucket.status, 128);
  assert.equal(
    noBucket.stderr,
    "pgwal: error: could not list s3://pgwal-absent/wal: bucket s3://pgwal-absent does not exist\n",
  );
});

test("a bucket gets the directory's guarantees: bounded decompression, checked names, 128 for a corrupt object", {
  timeout: 180_000,
}, async () => {
  const bucket = await rgw.createBucket("hardened");
  const url = `s3://${bucket}/wal`;
  const store = await openObjectStore(url, { credentials: rgw.credentials }, rgw.awsEnv());
  const env = { HOME: work, ...rgw.awsEnv() };
  try {
    // A valid first segment followed by 2 GiB of compressed zeros: the object's body is cut off by
    // the same bound as a local file (segment size from the first page, + 1 byte).
    const name = `${syntheticName(5n)}.gz`;
    const bombFile = join(work, name);
    const size = await writeBomb(bombFile, (data) => gzipSync(data, { level: 9 }), syntheticSegment(5n));
    await store.putComplete(name, bombFile, size);
    const read = await bucketSource(store).readSegment(name, "gzip", false);
    assert.ok(read !== undefined);
    assert.equal(read.content.length, SYNTHETIC_SEGMENT_SIZE + 1);
    assert.ok(read.decodedBytes <= SYNTHETIC_SEGMENT_SIZE + 1 + 64 * 1024, `decoded ${read.decodedBytes}`);

    const restored = await runPgwal(
      ["restore", syntheticName(5n), join(work, "bomb-out"), "--directory", url],
      {
        env,
      },
    );
    assert.equal(restored.status, 128);
    assert.match(restored.stderr, /^pgwal: error: archived WAL file "[0-9A-F]{24}\.gz" is corrupt: .*\n$/);

    // %f is checked before the bucket is asked: a key outside the prefix cannot be named.
    const hostile = await runPgwal(
      ["restore", "../other/000000010000000000000001", join(work, "x"), "--directory", url],
      {
        env,
      },
    );
    assert.equal(hostile.status, 128);
    assert.match(hostile.stderr, /invalid WAL file name/);
  } finally {
    store.destroy();
  }
});

test("verify --records, verify's target options and cleanup refuse s3:// with one line", async () => {
  const env = { HOME: work, ...rgw.awsEnv() };
  for (const [argv, status, message] of [
    [
      ["verify", "--records", "s3://b/wal"],
      2,
      "--records and the target options need a local archive directory, not s3://",
    ],
    [
      ["verify", "--target-lsn=0/3000000", "s3://b/wal"],
      2,
      "--records and the target options need a local archive directory, not s3://",
    ],
    [
      ["cleanup", "--keep=7d", "s3://b/wal"],
      undefined,
      "cleanup works on a local archive directory, not s3:// (use the bucket's lifecycle rules)",
    ],
  ] as const) {
    const run = await runPgwal([...argv], { env });
    if (status !== undefined) assert.equal(run.status, status);
    else assert.notEqual(run.status, 0);
    assert.equal(run.stderr, `pgwal: error: ${message}\n`);
  }
});
