/**
 * `pgwal receive --target s3://…` against a real PostgreSQL and a real S3 implementation (Ceph RGW):
 * what reaches the bucket, in what order, what the slot is told, and what a crash leaves behind.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { type Lsn, parseLsn } from "../../src/lsn.js";
import type { S3ObjectStore } from "../../src/store/object-store.js";
import { openObjectStore } from "../../src/store/open-store.js";
import { parseArchiveFileName, parseWalFileName, walFileName } from "../../src/wal/names.js";
import { type CliRun, jsonLogLines, runPgwal } from "../cli/cli-harness.js";
import { archiveFileContent, listArchive } from "../support/archive-asserts.js";
import { PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";
import { startSharedRgw } from "../support/rgw.js";
import { waitFor } from "../support/wait-for.js";

const SEGMENT = 1024 * 1024;
const rgw = await startSharedRgw();
let cluster: PgCluster;
let workDir: string;
const stores: S3ObjectStore[] = [];

before(async () => {
  cluster = await startSharedCluster({
    name: "upload",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "256MB" },
  });
  workDir = await mkdtemp("/tmp/pgwal-upload-it-");
});

after(async () => {
  for (const store of stores) store.destroy();
  if (workDir) await rm(workDir, { recursive: true, force: true });
});

async function openStore(url: string): Promise<S3ObjectStore> {
  const store = await openObjectStore(url, { credentials: rgw.credentials }, rgw.awsEnv());
  stores.push(store);
  return store;
}

interface Running {
  child: ChildProcess;
  done: Promise<CliRun>;
  /** What it has written to stderr so far. */
  stderr: () => string;
}

/**
 * Starts `pgwal receive` with the RGW's keys in its environment, as a user would set them, and
 * resolves once it streams (or has exited): before PostgreSQL 15 there is no READ_REPLICATION_SLOT,
 * so an empty archive starts at the server's current position, and WAL made earlier is not streamed.
 */
async function startReceive(args: string[], env: Record<string, string> = rgw.awsEnv()): Promise<Running> {
  let child: ChildProcess | undefined;
  let stderr = "";
  let started: () => void = () => {};
  const streaming = new Promise<void>((resolve) => {
    started = resolve;
  });
  const done = runPgwal(["receive", "--log-format=json", "-v", ...args], {
    env: { HOME: workDir, ...env },
    timeoutMs: 300_000,
    onStart: (c) => {
      child = c;
    },
    onStderr: (text) => {
      stderr = text;
      if (text.includes("starting log streaming")) started();
    },
  });
  await Promise.race([streaming, done]);
  return { child: child!, done, stderr: () => stderr };
}

async function stop(running: Running): Promise<CliRun> {
  running.child.kill("SIGTERM");
  const run = await running.done;
  assert.equal(run.status, 0, run.stderr.slice(-3000));
  return run;
}

function connectionArgs(): string[] {
  return ["-h", "127.0.0.1", "-p", String(cluster.port), "-U", TEST_USERS.trust.name];
}

async function someWal(target: PgCluster, rows: number): Promise<Lsn> {
  return parseLsn(
    await target.sql(
      `CREATE TABLE IF NOT EXISTS u (pad text); INSERT INTO u SELECT repeat(md5(g::text), 10) FROM generate_series(1, ${rows}) AS g; SELECT pg_current_wal_lsn();`,
    ),
  );
}

async function objectNames(store: S3ObjectStore): Promise<string[]> {
  return (await store.list()).map((o) => o.name).sort();
}

/** The object's bytes, decompressed like the archive file of the same name. */
async function objectContent(store: S3ObjectStore, name: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of await store.get(name)) chunks.push(chunk as Buffer);
  const path = join(workDir, `download-${name}`);
  await writeFile(path, Buffer.concat(chunks));
  try {
    return await archiveFileContent(path);
  } finally {
    await rm(path, { force: true });
  }
}

/** End LSN of a complete segment's name. */
function segmentEnd(name: string): Lsn {
  const parsed = parseWalFileName(parseArchiveFileName(name)!.walFileName, SEGMENT)!;
  return (parsed.segNo + 1n) * BigInt(SEGMENT);
}

async function slotRestartLsn(slot: string): Promise<Lsn> {
  const text = await cluster.sql(`SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = '${slot}'`);
  return text === "" ? 0n : parseLsn(text);
}

/** Every complete object equals the server's segment; complete segments of each timeline have no gap. */
async function assertBucketMatchesServer(
  store: S3ObjectStore,
  server: PgCluster,
  names: string[],
): Promise<void> {
  const segNos = new Map<number, bigint[]>();
  for (const name of names) {
    const parsed = parseArchiveFileName(name);
    if (parsed === undefined || parsed.partial) continue;
    const ours = await objectContent(store, name);
    const theirs = await readFile(server.walPath(parsed.walFileName));
    assert.ok(ours.equals(theirs), `${name} in the bucket differs from the server's ${parsed.walFileName}`);
    const { timeline, segNo } = parseWalFileName(parsed.walFileName, SEGMENT)!;
    segNos.set(timeline, [...(segNos.get(timeline) ?? []), segNo]);
  }
  for (const [timeline, list] of segNos) {
    list.sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    for (let i = 1; i < list.length; i++)
      assert.equal(list[i], list[i - 1]! + 1n, `gap in timeline ${timeline} after segment ${list[i - 1]}`);
  }
}

describe("streaming into a bucket", () => {
  for (const method of ["none", "gzip", "lz4"] as const) {
    test(`-Z ${method}: complete objects equal the server's segments, the .partial follows the flush position`, async () => {
      const bucket = await rgw.createBucket(`stream-${method}`);
      const url = `s3://${bucket}/db1/wal`;
      const store = await openStore(url);
      const dir = await mkdtemp(join(workDir, `stream-${method}-`));
      const slot = `up_${method}`;
      await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
      const running = await startReceive([
        "-D",
        dir,
        ...connectionArgs(),
        "--slot",
        slot,
        "-Z",
        method,
        "--target",
        url,
        "--partial-upload-interval=1",
        "--upload-state-file",
        `${dir}.state.json`,
      ]);
      try {
        await someWal(cluster, 30_000);
        await cluster.sql("SELECT pg_switch_wal()");
        const end = await someWal(cluster, 500);
        const local = await waitFor("three complete segments locally", async () => {
          const summary = await listArchive(dir);
          return summary.complete.length >= 3 ? summary : undefined;
        });
        await waitFor(
          "every local complete segment in the bucket, and the .partial up to the last WAL",
          async () => {
            const names = await objectNames(store);
            if (!local.complete.every((n) => names.includes(n))) return undefined;
            const partial = names.find((n) => n.endsWith(".partial"));
            if (partial === undefined) return undefined;
            const content = await objectContent(store, partial);
            return content.length >= Number(end % BigInt(SEGMENT)) ? true : undefined;
          },
          60_000,
        );
      } finally {
        await stop(running);
      }
      const names = await objectNames(store);
      const suffix = method === "gzip" ? ".gz" : method === "lz4" ? ".lz4" : "";
      const pattern = new RegExp(`^[0-9A-F]{24}${suffix.replace(".", "\\.")}(\\.partial)?$`);
      for (const name of names) assert.match(name, pattern);
      await assertBucketMatchesServer(store, cluster, names);
      // The partial object holds the server's bytes up to where the receiver had flushed.
      const partials = names.filter((n) => n.endsWith(".partial"));
      assert.equal(partials.length, 1, `one .partial in the bucket: ${partials.join(", ")}`);
      const partialName = partials[0]!;
      const ours = await objectContent(store, partialName);
      const theirs = await readFile(cluster.walPath(parseArchiveFileName(partialName)!.walFileName));
      assert.ok(
        ours.length > 0 && ours.equals(theirs.subarray(0, ours.length)),
        "partial object is a prefix of the server's segment",
      );
      await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);

      // verify and status read the bucket as they read the directory.
      const env = { HOME: workDir, ...rgw.awsEnv() };
      const verified = await runPgwal(["verify", url], { env });
      assert.equal(verified.status, 0, verified.stdout + verified.stderr);
      assert.match(verified.stdout, new RegExp(`^archive ${url}: OK$`, "m"));
      const fromBucket = JSON.parse((await runPgwal(["status", url, "--json"], { env })).stdout) as Record<
        string,
        unknown
      >;
      const fromDirectory = JSON.parse((await runPgwal(["status", dir, "--json"], { env })).stdout) as Record<
        string,
        unknown
      >;
      for (const key of [
        "segmentSize",
        "systemIdentifier",
        "firstLsn",
        "segmentCount",
        "partialCount",
        "timelines",
      ])
        assert.deepEqual(fromBucket[key], fromDirectory[key], `status ${key}`);
      assert.equal(fromBucket.directory, url);
      // A damaged object is found, like a damaged file.
      const damaged = join(workDir, `damaged-${method}`);
      await writeFile(damaged, Buffer.alloc(SEGMENT, 0x5a));
      await store.putComplete(`000000010000000000000FFF${suffix}`, damaged, SEGMENT);
      const problems = await runPgwal(["verify", url], { env });
      assert.equal(problems.status, 1, problems.stdout + problems.stderr);
      assert.match(problems.stdout, /000000010000000000000FFF/);
    });
  }

  test("history files and a timeline switch: the new timeline's history and segments reach the bucket", async () => {
    const standby = await cluster.createStandby({ name: "upload-standby" });
    const bucket = await rgw.createBucket("timeline");
    const url = `s3://${bucket}/tl`;
    const store = await openStore(url);
    const dir = await mkdtemp(join(workDir, "timeline-"));
    const running = await startReceive([
      "-D",
      dir,
      "-h",
      "127.0.0.1",
      "-p",
      String(standby.port),
      "-U",
      TEST_USERS.trust.name,
      "--target",
      url,
      "--partial-upload-interval=1",
      "--upload-state-file",
      `${dir}.state.json`,
    ]);
    try {
      await someWal(cluster, 10_000);
      await sleep(1000);
      await standby.promote();
      await someWal(standby, 30_000);
      await standby.sql("SELECT pg_switch_wal()");
      await someWal(standby, 100);
      const local = await waitFor("a complete segment of timeline 2 locally", async () => {
        const summary = await listArchive(dir);
        return summary.complete.some((n) => n.startsWith("00000002")) ? summary : undefined;
      });
      assert.deepEqual(local.history, ["00000002.history"]);
      await waitFor(
        "the history file and every complete segment in the bucket",
        async () => {
          const names = await objectNames(store);
          return [...local.complete, ...local.history].every((n) => names.includes(n)) ? true : undefined;
        },
        60_000,
      );
    } finally {
      await stop(running);
      const names = await objectNames(store);
      await assertBucketMatchesServer(
        store,
        standby,
        names.filter((n) => n.startsWith("00000002")),
      );
      const history = await objectContent(store, "00000002.history");
      assert.ok(history.equals(await readFile(join(standby.dataDir, "pg_wal", "00000002.history"))));
      await standby.destroy();
    }
  });
});

describe("--upload-holds-slot", () => {
  test("the slot never passes what the bucket holds; with RGW stopped the spool grows, nothing is lost, and it catches up", async () => {
    const bucket = await rgw.createBucket("hold");
    const url = `s3://${bucket}/wal`;
    const store = await openStore(url);
    const dir = await mkdtemp(join(workDir, "hold-"));
    const slot = "up_hold";
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
    // Where the slot starts (it reserves WAL from its creation); from here on, only pgwal moves it.
    const createdAt = await slotRestartLsn(slot);
    const running = await startReceive([
      "-D",
      dir,
      ...connectionArgs(),
      "--slot",
      slot,
      "-s",
      "1",
      "--target",
      url,
      "--upload-holds-slot",
      "--partial-upload-interval=1",
      "--upload-state-file",
      `${dir}.state.json`,
      "--metrics-listen=127.0.0.1:0",
    ]);
    /** End of WAL wholly in the bucket: contiguous complete segments, then the partial's length. */
    const bucketHolds = async (): Promise<Lsn> => {
      const objects = await store.list();
      const complete = objects
        .filter((o) => !o.name.endsWith(".partial") && !o.name.endsWith(".history"))
        .map((o) => segmentEnd(o.name))
        .sort((a, b) => (a < b ? -1 : 1));
      let end = complete[0] ?? 0n;
      for (const e of complete) if (e === end || e === end + BigInt(SEGMENT)) end = e;
      const partial = objects.find((o) => o.name.endsWith(".partial"));
      if (partial !== undefined) {
        const start = segmentEnd(partial.name) - BigInt(SEGMENT);
        if (start === end || complete.length === 0) end = start + BigInt(partial.size);
      }
      return end;
    };
    try {
      await someWal(cluster, 20_000);
      await cluster.sql("SELECT pg_switch_wal()");
      await waitFor(
        "the slot to follow the uploads",
        async () => ((await slotRestartLsn(slot)) > createdAt ? true : undefined),
        60_000,
      );
      const metricsPort = await waitFor("the metrics address", () => {
        // The last line may still be on its way.
        const complete = running.stderr().slice(0, running.stderr().lastIndexOf("\n") + 1);
        const line = jsonLogLines(complete).find((l) => typeof l.port === "number");
        return line?.port as number | undefined;
      });
      await rgw.stopGateway();
      let restartWhileDown: Lsn;
      let localWhileDown: string[];
      try {
        // An upload confirmed just before the stop is reported within one status interval (-s 1).
        await sleep(2500);
        // Whatever the slot was told before, it is within what the bucket held when the gateway stopped.
        restartWhileDown = await slotRestartLsn(slot);
        await someWal(cluster, 20_000);
        await cluster.sql("SELECT pg_switch_wal()");
        await someWal(cluster, 100);
        localWhileDown = await waitFor("segments completing locally while the store is down", async () => {
          const summary = await listArchive(dir);
          return summary.complete.length >= 4 ? summary.complete : undefined;
        });
        // Several status intervals: a flush report past the bucket would have moved the slot by now.
        await sleep(3500);
        assert.equal(await slotRestartLsn(slot), restartWhileDown, "the slot moved while the store was down");
        const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
        const pending = Number(/^pgwal_upload_pending_files (\d+)/m.exec(metrics)?.[1]);
        assert.ok(pending > 0, `pending uploads reported while the store is down:\n${metrics}`);
        assert.match(metrics, /^pgwal_upload_failures_total [1-9]/m);
      } finally {
        await rgw.startGateway();
      }
      const heldBefore = await bucketHolds();
      assert.ok(restartWhileDown <= heldBefore, "the slot passed what the bucket held");
      await waitFor(
        "the uploads to catch up (every complete segment in the bucket) and the slot to follow",
        async () => {
          const names = await objectNames(store);
          const local = (await listArchive(dir)).complete;
          if (![...localWhileDown, ...local].every((n) => names.includes(n))) return undefined;
          return (await slotRestartLsn(slot)) > restartWhileDown ? true : undefined;
        },
        120_000,
      );
      assert.ok(
        (await slotRestartLsn(slot)) <= (await bucketHolds()),
        "the slot passed what the bucket holds",
      );
    } finally {
      await stop(running);
      await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
    }
    await assertBucketMatchesServer(store, cluster, await objectNames(store));
  });
});

describe("kill -9 during uploads", () => {
  test("a restart re-uploads exactly the unconfirmed files: no duplicates, no gaps", async () => {
    const bucket = await rgw.createBucket("kill");
    const url = `s3://${bucket}/wal`;
    const store = await openStore(url);
    const dir = await mkdtemp(join(workDir, "kill-"));
    const stateFile = `${dir}.state.json`;
    const slot = "up_kill";
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
    const args = [
      "-D",
      dir,
      ...connectionArgs(),
      "--slot",
      slot,
      "--target",
      url,
      "--upload-concurrency=3",
      "--partial-upload-interval=1",
      "--upload-state-file",
      stateFile,
    ];
    const first = await startReceive(args);
    await someWal(cluster, 100_000);
    await cluster.sql("SELECT pg_switch_wal()");
    await waitFor("a few confirmed uploads", async () => {
      const state = await readFile(stateFile, "utf8").catch(() => "");
      return state !== "" && (JSON.parse(state) as { done: string[] }).done.length >= 3 ? true : undefined;
    });
    first.child.kill("SIGKILL");
    const killed = await first.done;
    assert.equal(killed.signal, "SIGKILL");
    const confirmed = new Set((JSON.parse(await readFile(stateFile, "utf8")) as { done: string[] }).done);
    const localAtKill = (await listArchive(dir)).complete;
    assert.ok(
      localAtKill.some((n) => !confirmed.has(n)),
      "some files were still unconfirmed at the kill",
    );

    const second = await startReceive(args);
    let run: CliRun;
    try {
      await waitFor(
        "the restarted receiver to confirm every file of the first run",
        async () => {
          const state = await readFile(stateFile, "utf8").catch(() => "");
          const done = new Set(state === "" ? [] : (JSON.parse(state) as { done: string[] }).done);
          return localAtKill.every((n) => done.has(n)) ? true : undefined;
        },
        120_000,
      );
    } finally {
      run = await stop(second);
      await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
    }
    const uploadedAgain = jsonLogLines(run.stderr)
      .filter(
        (l) => typeof l.file === "string" && (l.outcome === "created" || l.outcome === "already-identical"),
      )
      .map((l) => l.file as string);
    assert.deepEqual(
      uploadedAgain.filter((n) => confirmed.has(n)),
      [],
      "a confirmed file was uploaded again after the restart",
    );
    for (const name of localAtKill.filter((n) => !confirmed.has(n)))
      assert.ok(
        uploadedAgain.includes(name),
        `${name} was not confirmed before the kill and not uploaded after it`,
      );
    assert.equal(new Set(uploadedAgain).size, uploadedAgain.length, "a file was uploaded twice in one run");
    const names = await objectNames(store);
    const local = await listArchive(dir);
    assert.deepEqual(
      names.filter((n) => !n.endsWith(".partial")),
      [...local.complete].sort(),
      "the bucket holds exactly the local complete segments",
    );
    assert.ok(
      names.filter((n) => n.endsWith(".partial")).length <= 1,
      `stale .partial objects: ${names.join(", ")}`,
    );
    await assertBucketMatchesServer(store, cluster, names);
  });
});

describe("refusals: one clear line, exit 1, nothing lost locally", () => {
  test("wrong keys, a missing bucket, and a user without access are refused before streaming", async () => {
    const bucket = await rgw.createBucket("refuse");
    const dir = await mkdtemp(join(workDir, "refuse-"));
    const base = ["-D", dir, ...connectionArgs(), "--upload-state-file", `${dir}.state.json`];
    const wrongKeys = await runPgwal(["receive", ...base, "--target", `s3://${bucket}/wal`], {
      env: {
        HOME: workDir,
        ...rgw.awsEnv({ accessKeyId: rgw.credentials.accessKeyId, secretAccessKey: "nope" }),
      },
    });
    assert.equal(wrongKeys.status, 1);
    assert.deepEqual(errorLines(wrongKeys.stderr), [
      `pgwal: error: could not list s3://${bucket}/wal: the object store rejected the credentials (SignatureDoesNotMatch)`,
    ]);
    const missing = await runPgwal(["receive", ...base, "--target", "s3://pgwal-missing/wal"], {
      env: { HOME: workDir, ...rgw.awsEnv() },
    });
    assert.equal(missing.status, 1);
    assert.deepEqual(errorLines(missing.stderr), [
      "pgwal: error: could not list s3://pgwal-missing/wal: bucket s3://pgwal-missing does not exist",
    ]);
    const stranger = await rgw.createUser(`refuse-${bucket}`);
    const denied = await runPgwal(["receive", ...base, "--target", `s3://${bucket}/wal`], {
      env: { HOME: workDir, ...rgw.awsEnv(stranger) },
    });
    assert.equal(denied.status, 1);
    assert.deepEqual(errorLines(denied.stderr), [
      `pgwal: error: could not list s3://${bucket}/wal: access denied (AccessDenied)`,
    ]);
  });

  test("a second cluster pointed at a prefix holding another cluster's WAL is refused before uploading", async () => {
    const bucket = await rgw.createBucket("other");
    const url = `s3://${bucket}/shared`;
    const store = await openStore(url);
    // Some WAL first: at a segment boundary the current position names a file not created yet.
    await someWal(cluster, 10);
    const current = await cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    await store.putComplete(current, cluster.walPath(current), SEGMENT);
    const other = await PgCluster.start({ name: "upload-other", walSegmentSizeMb: 1 });
    try {
      const systemId = await cluster.sql("SELECT system_identifier FROM pg_control_system()");
      const otherId = await other.sql("SELECT system_identifier FROM pg_control_system()");
      const dir = await mkdtemp(join(workDir, "other-"));
      const run = await runPgwal(
        [
          "receive",
          "-D",
          dir,
          "-h",
          "127.0.0.1",
          "-p",
          String(other.port),
          "-U",
          TEST_USERS.trust.name,
          "--target",
          url,
          "--upload-state-file",
          `${dir}.state.json`,
        ],
        { env: { HOME: workDir, ...rgw.awsEnv() }, timeoutMs: 60_000 },
      );
      assert.equal(run.status, 1, run.stderr);
      assert.deepEqual(errorLines(run.stderr), [
        `pgwal: error: ${url} holds WAL of database system ${systemId} (object "${current}"), but the server's system identifier is ${otherId}: refusing to mix clusters; use an empty prefix for this server`,
      ]);
      assert.deepEqual(await objectNames(store), [current], "nothing of the second cluster was uploaded");
    } finally {
      await other.destroy();
    }
  });

  test("a different object under a segment's name stops the receiver with one line and is not overwritten", async () => {
    const bucket = await rgw.createBucket("conflict");
    const url = `s3://${bucket}/wal`;
    const store = await openStore(url);
    // The segments this server writes next, already taken by other bytes.
    const current = await cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
    const segNo = BigInt(`0x${current.slice(16, 24)}`);
    const taken = [0n, 1n, 2n, 3n].map(
      (step) => `${current.slice(0, 16)}${(segNo + step).toString(16).toUpperCase().padStart(8, "0")}`,
    );
    const foreign = join(workDir, "foreign-bytes");
    await writeFile(foreign, Buffer.alloc(SEGMENT, 0x42));
    for (const name of taken) await store.putComplete(name, foreign, SEGMENT);
    const dir = await mkdtemp(join(workDir, "conflict-"));
    const slot = "up_conflict";
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
    const running = await startReceive([
      "-D",
      dir,
      ...connectionArgs(),
      "--slot",
      slot,
      "--target",
      url,
      "--upload-state-file",
      `${dir}.state.json`,
    ]);
    await someWal(cluster, 10_000);
    await cluster.sql("SELECT pg_switch_wal()");
    const run = await running.done;
    await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
    assert.equal(run.status, 1, run.stderr.slice(-2000));
    const errors = errorLines(run.stderr);
    assert.equal(errors.length, 1, run.stderr.slice(-2000));
    assert.match(
      errors[0]!,
      /^pgwal: error: another cluster or receiver wrote a different "[0-9A-F]{24}" to s3:\/\/[^ ]+\/wal; refusing to overwrite it$/,
    );
    for (const name of taken) {
      const chunks: Buffer[] = [];
      for await (const chunk of await store.get(name)) chunks.push(chunk as Buffer);
      assert.ok(Buffer.concat(chunks).equals(await readFile(foreign)), `${name} was overwritten`);
    }
    assert.ok((await listArchive(dir)).complete.length >= 1, "the local archive kept the completed segments");
  });

  test("a PUT the bucket policy denies stops the receiver with one line; the local archive keeps the WAL", async () => {
    const bucket = await rgw.createBucket("denyput");
    const uid = `lister-${bucket}`;
    const lister = await rgw.createUser(uid);
    const { PutBucketPolicyCommand, S3Client } = await import("@aws-sdk/client-s3");
    const owner = new S3Client({
      region: rgw.region,
      endpoint: rgw.endpoint,
      forcePathStyle: true,
      credentials: rgw.credentials,
    });
    try {
      await owner.send(
        new PutBucketPolicyCommand({
          Bucket: bucket,
          Policy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              {
                Effect: "Allow",
                Principal: { AWS: [`arn:aws:iam:::user/${uid}`] },
                Action: ["s3:ListBucket"],
                Resource: [`arn:aws:s3:::${bucket}`],
              },
            ],
          }),
        }),
      );
    } finally {
      owner.destroy();
    }
    const dir = await mkdtemp(join(workDir, "denyput-"));
    const slot = "up_deny";
    await cluster.sql(`SELECT pg_create_physical_replication_slot('${slot}', true)`);
    const running = await startReceive(
      [
        "-D",
        dir,
        ...connectionArgs(),
        "--slot",
        slot,
        "--target",
        `s3://${bucket}/wal`,
        "--upload-state-file",
        `${dir}.state.json`,
      ],
      rgw.awsEnv(lister),
    );
    await someWal(cluster, 10_000);
    await cluster.sql("SELECT pg_switch_wal()");
    const run = await running.done;
    await cluster.sql(`SELECT pg_drop_replication_slot('${slot}')`);
    assert.equal(run.status, 1, run.stderr.slice(-2000));
    const errors = errorLines(run.stderr);
    assert.equal(errors.length, 1);
    assert.match(
      errors[0]!,
      /^pgwal: error: could not write s3:\/\/[^ ]+\/wal\/[0-9A-F]{24}: access denied \(AccessDenied\)$/,
    );
    assert.ok((await listArchive(dir)).complete.length >= 1, "the local archive kept the completed segments");
  });
});

/** The plain `pgwal: error:` lines (the JSON log carries the same message as a field). */
function errorLines(stderr: string): string[] {
  return stderr.split("\n").filter((line) => line.startsWith("pgwal: error:"));
}

test("receive --retention never removes a local segment whose upload is not confirmed (RGW stopped)", async () => {
  const bucket = await rgw.createBucket("retention");
  const url = `s3://${bucket}/wal`;
  const store = await openStore(url);
  const dir = await mkdtemp(join(workDir, "retention-"));
  const running = await startReceive([
    "-D",
    dir,
    ...connectionArgs(),
    "--target",
    url,
    "--retention=1s",
    "--partial-upload-interval=0",
    "--upload-state-file",
    `${dir}.state.json`,
  ]);
  try {
    await waitFor("the receiver to stream", async () =>
      (await listArchive(dir)).partial.length > 0 ? true : undefined,
    );
    await someWal(cluster, 100);
    await cluster.sql("SELECT pg_switch_wal()");
    await waitFor("a first segment in the bucket", async () =>
      (await objectNames(store)).some((name) => !name.endsWith(".partial")) ? true : undefined,
    );
    const inBucket = await objectNames(store);
    await rgw.stopGateway();
    let completedWhileDown: string[] = [];
    try {
      // From the segment in progress when the store went away to the last one switched away from.
      const first = await cluster.sql("SELECT pg_walfile_name(pg_current_wal_lsn())");
      // Segments complete while nothing can be uploaded, each older than the window by the next one.
      let last = first;
      for (let round = 0; round < 4; round++) {
        await someWal(cluster, 2000);
        // The segment switched away from: complete, and the newest one the receiver must finish.
        last = await cluster.sql("SELECT pg_walfile_name(pg_switch_wal())");
        await sleep(1500);
      }
      const from = parseWalFileName(first, SEGMENT)!;
      const to = parseWalFileName(last, SEGMENT)!;
      for (let segNo = from.segNo; segNo <= to.segNo; segNo++)
        completedWhileDown.push(walFileName(from.timeline, segNo, SEGMENT));
      // pg_walfile_name names the segment before an LSN on a boundary: keep what was not uploaded.
      completedWhileDown = completedWhileDown.filter((name) => !inBucket.includes(name));
      assert.ok(completedWhileDown.length >= 4, `segments completed while down: ${completedWhileDown}`);
      const local = await waitFor("the receiver to complete them", async () => {
        const names = (await listArchive(dir)).complete;
        return names.includes(completedWhileDown.at(-1)!) ? names : undefined;
      });
      // A run of retention follows each segment; give the last one time to finish.
      await sleep(1500);
      const now = (await listArchive(dir)).complete;
      for (const name of completedWhileDown)
        assert.ok(
          now.includes(name),
          `${name} removed before its upload was confirmed (had: ${local})\n${running.stderr().slice(-6000)}`,
        );
    } finally {
      await rgw.startGateway();
    }
    await waitFor(
      "the segments completed while the store was down to reach the bucket",
      async () => {
        const names = await objectNames(store);
        return completedWhileDown.every((name) => names.includes(name)) ? true : undefined;
      },
      120_000,
    );
  } finally {
    await stop(running);
  }
});
