import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { SegmentHookRunner, substituteHookCommand } from "../../src/hooks/segment-hooks.js";
import { type Lsn, parseLsn } from "../../src/lsn.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { WalReceiver } from "../../src/receiver/receiver.js";
import { listArchive } from "../support/archive-asserts.js";
import { type PgCluster, startSharedCluster, TEST_USERS } from "../support/cluster.js";

let cluster: PgCluster;
before(async () => {
  cluster = await startSharedCluster({
    name: "hooks",
    walSegmentSizeMb: 1,
    settings: { wal_keep_size: "256MB" },
  });
});

const childScript = join(fileURLToPath(new URL(".", import.meta.url)), "../support/receiver-child.js");

async function someWal(rows: number): Promise<Lsn> {
  return parseLsn(
    await cluster.sql(
      `CREATE TABLE IF NOT EXISTS h (pad text); INSERT INTO h SELECT repeat('h', 300) FROM generate_series(1, ${rows}); SELECT pg_current_wal_lsn();`,
    ),
  );
}

/** Resolves when a receiver-child prints its "streaming" event (it prints one JSON line per event). */
function childStreaming(child: ChildProcess, timeoutMs = 30_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => {
      child.stdout?.off("data", onData);
      reject(new Error("the receiver child did not start streaming"));
    }, timeoutMs);
    const onData = (chunk: Buffer): void => {
      buffered += chunk.toString("utf8");
      if (!buffered.split("\n").some((line) => line.startsWith('{"event":"streaming"'))) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      // Keep draining, so that the child never blocks on a full pipe.
      child.stdout?.resume();
      resolve();
    };
    child.stdout?.on("data", onData);
  });
}

/** Lines of the hook log: one file name per successful hook run. */
async function hookLog(file: string): Promise<string[]> {
  return (await readFile(file, "utf8").catch(() => "")).split("\n").filter(Boolean);
}

test("archive_command-style substitution", () => {
  assert.equal(substituteHookCommand("cp %p /x/%f # 100%%", "/a/b", "b"), "cp /a/b /x/b # 100%");
});

describe("--on-segment hooks", () => {
  test("run in order, once per file, retried after failures", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-hooks-"));
    const log = `${dir}.log`;
    const failFlag = `${dir}.fail`;
    await writeFile(failFlag, "3"); // the first three attempts fail
    // Fails while the counter in failFlag is positive, else appends %f to the log.
    const command = `n=$(cat ${failFlag}); if [ "$n" -gt 0 ]; then echo $((n-1)) > ${failFlag}; echo boom >&2; exit 1; fi; echo %f >> ${log}`;
    await cluster.sql("SELECT pg_create_physical_replication_slot('hk_order', true)");
    const hooks = new SegmentHookRunner({
      command,
      directory: dir,
      stateFile: `${dir}.state.json`,
      logger: silentLogger,
      retryDelayMs: { initial: 50, max: 100 },
    });
    let failures = 0;
    hooks.on("failed", () => failures++);
    const receiver = new WalReceiver({
      connection: resolveConnectionSettings({
        overrides: {
          host: "127.0.0.1",
          port: String(cluster.port),
          user: TEST_USERS.trust.name,
          sslmode: "disable",
        },
        forced: { replication: "true" },
        env: {},
      }),
      directory: dir,
      slot: "hk_order",
      logger: silentLogger,
    });
    receiver.on("connected", (e) => void hooks.start(e.segmentSize));
    receiver.on("segment", (e) => hooks.enqueue(e.walFileName));
    // Streaming starts first: before PostgreSQL 15 an empty archive starts at the server's position.
    const running = receiver.run();
    await new Promise((resolve) => receiver.once("streaming", resolve));
    await cluster.generateWal(3);
    const endpos = await someWal(500);
    while (receiver.positions.written < endpos) await sleep(20);
    receiver.stop();
    await running;
    const complete = (await listArchive(dir)).complete;
    for (let i = 0; i < 100 && (await hookLog(log)).length < complete.length; i++) await sleep(50);
    await hooks.stop();
    assert.deepEqual(await hookLog(log), complete, "every complete segment once, in order");
    assert.equal(failures, 3);
    assert.equal(hooks.failureCount, 3);
    await cluster.sql("SELECT pg_drop_replication_slot('hk_order')");
    await rm(dir, { recursive: true });
  });

  test("resume after kill -9: a segment whose hook never succeeded runs after the restart; --hook-holds-slot holds the slot", async () => {
    const dir = await mkdtemp(join(tmpdir(), "pgwal-hooks-kill-"));
    const log = `${dir}.log`;
    const gate = `${dir}.gate`;
    await cluster.sql("SELECT pg_create_physical_replication_slot('hk_kill', true)");
    // The hook fails while the gate file exists: WAL must not leave the slot's protection meanwhile.
    await writeFile(gate, "");
    const command = `test ! -e ${gate} && echo %f >> ${log}`;
    const options = {
      host: "127.0.0.1",
      port: cluster.port,
      user: TEST_USERS.trust.name,
      directory: dir,
      slot: "hk_kill",
      hookCommand: command,
      hookStateFile: `${dir}.state.json`,
      hookHoldsSlot: true,
      statusIntervalSeconds: 1,
    };
    const startRestart = await cluster.sql(
      "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'hk_kill'",
    );
    let child = spawn(process.execPath, [childScript, JSON.stringify(options)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    // Let it start streaming first (before PostgreSQL 15 it starts at the server's position).
    await childStreaming(child);
    await cluster.generateWal(3);
    for (let i = 0; (await listArchive(dir)).complete.length < 3; i++) {
      assert.ok(i < 300, "segments completed");
      await sleep(100);
    }
    // Longer than the status interval (1 s): a flush report the hooks should have held back would
    // have reached the server by now.
    await sleep(2500);
    // No hook has succeeded: the slot must still be where it started.
    assert.equal(
      await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'hk_kill'"),
      startRestart,
      "the slot advanced past WAL whose hook has not succeeded",
    );
    child.kill("SIGKILL");
    await new Promise((resolve) => child.once("exit", resolve));
    await rm(gate);
    child = spawn(process.execPath, [childScript, JSON.stringify(options)], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    try {
      const complete = (await listArchive(dir)).complete;
      for (let i = 0; i < 100 && (await hookLog(log)).length < complete.length; i++) await sleep(100);
      const ran = await hookLog(log);
      assert.deepEqual(
        ran.slice(0, complete.length),
        complete,
        "files from before the kill were hooked, in order",
      );
      // Now that hooks succeed, the slot follows the last hooked segment end.
      const lastHooked = ran[ran.length - 1]!;
      const segEnd =
        (BigInt(`0x${lastHooked.slice(8, 16)}`) << 32n) +
        (BigInt(`0x${lastHooked.slice(16, 24)}`) + 1n) * BigInt(cluster.walSegmentSize);
      let restart = 0n;
      for (let i = 0; i < 50; i++) {
        restart = parseLsn(
          await cluster.sql("SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'hk_kill'"),
        );
        if (restart > parseLsn(startRestart)) break;
        await sleep(100);
      }
      assert.ok(restart > parseLsn(startRestart), "the slot advanced once hooks succeeded");
      assert.ok(restart <= segEnd, "the slot passed the end of the last hooked segment");
    } finally {
      child.kill("SIGKILL");
      await new Promise((resolve) => child.once("exit", resolve));
    }
    // The walsender of the killed child may not have seen the EOF yet: wait until it lets go.
    await cluster.sql(
      "DO $$ BEGIN FOR i IN 1..100 LOOP EXIT WHEN NOT EXISTS (SELECT FROM pg_replication_slots WHERE slot_name = 'hk_kill' AND active); PERFORM pg_sleep(0.05); END LOOP; END $$",
    );
    await cluster.sql("SELECT pg_drop_replication_slot('hk_kill')");
    await rm(dir, { recursive: true });
  });
});
