/**
 * `pgwal restore %f %p --directory s3://…`: the restore_command reads a bucket written by
 * `pgwal receive --target` with the exit codes it has for a directory.
 */
import assert from "node:assert/strict";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, test } from "node:test";
import { openObjectStore } from "../../src/store/open-store.js";
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
