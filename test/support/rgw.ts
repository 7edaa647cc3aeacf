/**
 * A real S3-compatible object store for integration tests: a throwaway single-node Ceph cluster (one
 * monitor, one OSD on memstore, radosgw) on 127.0.0.1, everything under one temp dir.
 *
 * One instance per test process (startSharedRgw), one bucket per test (createBucket): a user may own
 * only 1000 buckets, and starting Ceph costs seconds. Daemons never outlive the test process: stop()
 * ends them one by one (rgw → osd → mon; all at once made radosgw hang in shutdown), and an exit hook
 * kills leftovers.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { openSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { after } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { runCommand } from "./run.js";

/** Ports of this harness: the mon, radosgw, then the OSD's messenger range. */
const PORT_RANGE = { first: 29000, last: 29999 };
const PORTS_PER_INSTANCE = 10;
const START_ATTEMPTS = 5;
const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 5000;
const RGW_USER = "pgwal-test";
const REGION = "us-east-1";

export interface RgwCredentials {
  accessKeyId: string;
  secretAccessKey: string;
}

type Daemon = "mon" | "osd" | "rgw";

/** Instances with daemons that may be running, for the exit hook. */
const liveInstances = new Set<RgwInstance>();

export class RgwInstance {
  readonly region = REGION;
  /** Owner of the buckets createBucket makes. */
  readonly credentials: RgwCredentials = {
    accessKeyId: `PGWAL${randomBytes(8).toString("hex").toUpperCase()}`,
    secretAccessKey: randomBytes(20).toString("base64url"),
  };
  private readonly daemons = new Map<Daemon, ChildProcess>();
  private rgwPort = 0;
  private bucketCount = 0;
  /** Milliseconds from the first command to radosgw answering (for reports). */
  startupMs = 0;

  private constructor(readonly baseDir: string) {
    registerExitHook();
    liveInstances.add(this);
  }

  /** http://127.0.0.1:PORT of radosgw. */
  get endpoint(): string {
    return `http://127.0.0.1:${this.rgwPort}`;
  }

  private get conf(): string {
    return join(this.baseDir, "ceph.conf");
  }

  /** Bootstraps the cluster on ports of its own and creates the test user. */
  static async start(): Promise<RgwInstance> {
    await mkdir("/tmp/pgwal-rgw", { recursive: true });
    // Short: the admin sockets live here and unix socket paths are limited to ~107 bytes.
    const instance = new RgwInstance(await mkdtemp("/tmp/pgwal-rgw/c-"));
    const started = performance.now();
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await instance.bootstrap(await findFreePortWindow());
          break;
        } catch (error) {
          if (attempt >= START_ATTEMPTS || !/address already in use|bind/i.test(String(error))) throw error;
          await instance.stopDaemons();
          await rm(instance.baseDir, { recursive: true, force: true });
          await mkdir(instance.baseDir, { recursive: true });
        }
      }
      instance.startupMs = performance.now() - started;
      return instance;
    } catch (error) {
      await instance.destroy({ failed: true });
      throw error;
    }
  }

  /**
   * Environment for a pgwal child process (or the SDK) as AWS tools read it: keys, region, endpoint.
   * Nothing else from the caller's AWS_* settings leaks in.
   */
  awsEnv(credentials: RgwCredentials = this.credentials): Record<string, string> {
    return {
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_REGION: this.region,
      AWS_ENDPOINT_URL_S3: this.endpoint,
      // No ~/.aws files of the machine: the tests must not depend on them.
      AWS_CONFIG_FILE: join(this.baseDir, "no-aws-config"),
      AWS_SHARED_CREDENTIALS_FILE: join(this.baseDir, "no-aws-credentials"),
      AWS_EC2_METADATA_DISABLED: "true",
    };
  }

  /** Creates an empty bucket with a name no other test of this run uses, and returns the name. */
  async createBucket(label = "t"): Promise<string> {
    const safe = label
      .toLowerCase()
      .replace(/[^a-z0-9-]+/g, "-")
      .slice(0, 30);
    return this.createBucketNamed(`${safe}-${++this.bucketCount}-${randomBytes(3).toString("hex")}`);
  }

  /** Creates the bucket `name` (for examples that name their bucket) and returns the name. */
  async createBucketNamed(name: string): Promise<string> {
    const { CreateBucketCommand, S3Client } = await import("@aws-sdk/client-s3");
    const client = new S3Client({
      region: this.region,
      endpoint: this.endpoint,
      forcePathStyle: true,
      credentials: this.credentials,
    });
    try {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    } finally {
      client.destroy();
    }
    return name;
  }

  /** Creates another S3 user (e.g. one without access to the test buckets) and returns its keys. */
  async createUser(uid: string): Promise<RgwCredentials> {
    const credentials = {
      accessKeyId: `PGWAL${randomBytes(8).toString("hex").toUpperCase()}`,
      secretAccessKey: randomBytes(20).toString("base64url"),
    };
    await this.admin([
      "user",
      "create",
      `--uid=${uid}`,
      `--display-name=${uid}`,
      `--access-key=${credentials.accessKeyId}`,
      `--secret=${credentials.secretAccessKey}`,
    ]);
    return credentials;
  }

  /** Stops radosgw only (the store is unreachable; the cluster keeps its data). */
  async stopGateway(): Promise<void> {
    await this.stopDaemon("rgw");
  }

  /** Starts radosgw again on the same port after stopGateway(). */
  async startGateway(): Promise<void> {
    this.spawnDaemon("rgw", "radosgw", ["-n", "client.rgw.test", "-f"]);
    await this.waitForGateway();
  }

  /** Resident memory of the three daemons, in bytes (from /proc). */
  async residentBytes(): Promise<number> {
    let total = 0;
    for (const child of this.daemons.values()) {
      const status = await readFile(`/proc/${child.pid}/status`, "utf8").catch(() => "");
      const kb = /^VmRSS:\s+(\d+) kB/m.exec(status)?.[1];
      if (kb !== undefined) total += Number(kb) * 1024;
    }
    return total;
  }

  /** Stops the daemons; keeps the temp dir (logs) when `failed`, else removes it. */
  async destroy(options: { failed?: boolean } = {}): Promise<void> {
    await this.stopDaemons();
    liveInstances.delete(this);
    if (options.failed) {
      process.stderr.write(`[pgwal test rgw] kept for inspection: ${this.baseDir}\n`);
    } else {
      await rm(this.baseDir, { recursive: true, force: true });
    }
  }

  private async bootstrap(ports: number): Promise<void> {
    this.rgwPort = ports + 1;
    const dir = this.baseDir;
    for (const sub of ["run", "log", "crash", "mon", "osd", "rgw"]) await mkdir(join(dir, sub));
    const fsid = randomUUID();
    await writeFile(this.conf, cephConf(dir, fsid, ports));
    const keyring = join(dir, "keyring");
    const authtool = (args: string[]) => runCommand("ceph-authtool", args, { timeoutMs: 30_000 });
    await authtool(["--create-keyring", keyring, "--gen-key", "-n", "mon.", "--cap", "mon", "allow *"]);
    await authtool([
      keyring,
      "--gen-key",
      "-n",
      "client.admin",
      ...["--cap", "mon", "allow *", "--cap", "osd", "allow *", "--cap", "mgr", "allow *"],
    ]);
    await authtool([
      keyring,
      "--gen-key",
      "-n",
      "osd.0",
      ...["--cap", "mon", "allow profile osd", "--cap", "osd", "allow *"],
    ]);
    await authtool([
      keyring,
      "--gen-key",
      "-n",
      "client.rgw.test",
      ...["--cap", "mon", "allow rw", "--cap", "osd", "allow rwx"],
    ]);
    const monmap = join(dir, "monmap");
    await runCommand(
      "monmaptool",
      ["--create", "--fsid", fsid, "--addv", "a", `[v2:127.0.0.1:${ports}]`, monmap],
      { timeoutMs: 30_000 },
    );
    await this.tool("ceph-mon", ["--mkfs", "-i", "a", "--monmap", monmap, "--keyring", keyring]);
    this.spawnDaemon("mon", "ceph-mon", ["-i", "a", "-f"]);
    const osdUuid = randomUUID();
    // Waits for the monitor's quorum.
    await this.tool("ceph", ["--connect-timeout", "30", "osd", "new", osdUuid, "0"]);
    await this.tool("ceph-osd", ["--mkfs", "--osd-uuid", osdUuid, "-i", "0"]);
    this.spawnDaemon("osd", "ceph-osd", ["-i", "0", "-f"]);
    this.spawnDaemon("rgw", "radosgw", ["-n", "client.rgw.test", "-f"]);
    await this.waitForGateway();
    await this.admin([
      "user",
      "create",
      `--uid=${RGW_USER}`,
      "--display-name=pgwal tests",
      `--access-key=${this.credentials.accessKeyId}`,
      `--secret=${this.credentials.secretAccessKey}`,
    ]);
  }

  private async tool(program: string, args: string[]): Promise<string> {
    const { stdout } = await runCommand(program, ["--conf", this.conf, ...args], { timeoutMs: 60_000 });
    return stdout;
  }

  private admin(args: string[]): Promise<string> {
    return this.tool("radosgw-admin", args);
  }

  private spawnDaemon(which: Daemon, program: string, args: string[]): void {
    const out = openSync(join(this.baseDir, "log", `${which}.out`), "a");
    const child = spawn(program, ["--conf", this.conf, ...args], {
      stdio: ["ignore", out, out],
      detached: true,
    });
    child.unref();
    this.daemons.set(which, child);
  }

  /** Polls GET / until radosgw answers; fails early when a daemon died. */
  private async waitForGateway(): Promise<void> {
    const deadline = Date.now() + READY_TIMEOUT_MS;
    for (;;) {
      for (const [which, child] of this.daemons) {
        if (child.exitCode !== null || child.signalCode !== null) {
          const log = await readFile(join(this.baseDir, "log", `${which}.out`), "utf8").catch(() => "");
          throw new Error(`ceph ${which} exited during start-up:\n${log.slice(-3000)}`);
        }
      }
      try {
        const response = await fetch(this.endpoint, { signal: AbortSignal.timeout(2000) });
        await response.arrayBuffer();
        return;
      } catch {
        if (Date.now() > deadline) throw new Error(`radosgw did not answer on ${this.endpoint} in time`);
        await sleep(100);
      }
    }
  }

  private async stopDaemons(): Promise<void> {
    for (const which of ["rgw", "osd", "mon"] as const) await this.stopDaemon(which);
  }

  /** TERM, a few seconds' grace, then KILL. */
  private async stopDaemon(which: Daemon): Promise<void> {
    const child = this.daemons.get(which);
    if (child === undefined) return;
    this.daemons.delete(which);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const graceful = await Promise.race([exited.then(() => true), sleep(STOP_GRACE_MS).then(() => false)]);
    if (!graceful) {
      child.kill("SIGKILL");
      await exited;
    }
  }

  /** Exit hook: kills whatever still runs, synchronously. */
  killNow(): void {
    for (const child of this.daemons.values()) {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }
    this.daemons.clear();
  }
}

let shared: Promise<RgwInstance> | undefined;

/**
 * The test process's radosgw, started on first use; `after()` of the calling file stops it (keeping its
 * logs when a test failed). Meant for module top level: `const rgw = await startSharedRgw()`.
 */
export function startSharedRgw(): Promise<RgwInstance> {
  if (shared !== undefined) return shared;
  shared = RgwInstance.start();
  after(async () => {
    const instance = await shared?.catch(() => undefined);
    await instance?.destroy({ failed: process.exitCode !== undefined && process.exitCode !== 0 });
  });
  return shared;
}

function cephConf(dir: string, fsid: string, ports: number): string {
  const settings: Record<string, string | number> = {
    fsid,
    mon_host: `v2:127.0.0.1:${ports}`,
    public_addr: "127.0.0.1",
    cluster_addr: "127.0.0.1",
    ms_bind_msgr1: "false",
    ms_bind_msgr2: "true",
    ms_bind_port_min: ports + 2,
    ms_bind_port_max: ports + PORTS_PER_INSTANCE - 1,
    auth_cluster_required: "cephx",
    auth_service_required: "cephx",
    auth_client_required: "cephx",
    keyring: join(dir, "keyring"),
    run_dir: join(dir, "run"),
    admin_socket: join(dir, "run", "$name.asok"),
    log_file: join(dir, "log", "$name.log"),
    mon_cluster_log_file: join(dir, "log", "cluster.log"),
    crash_dir: join(dir, "crash"),
    mon_data: join(dir, "mon"),
    osd_data: join(dir, "osd"),
    rgw_data: join(dir, "rgw"),
    osd_objectstore: "memstore",
    memstore_device_bytes: 2 * 1024 * 1024 * 1024,
    osd_pool_default_size: 1,
    osd_pool_default_min_size: 1,
    mon_allow_pool_size_one: "true",
    mon_warn_on_pool_no_redundancy: "false",
    osd_pool_default_pg_num: 8,
    osd_pool_default_pgp_num: 8,
    osd_pool_default_pg_autoscale_mode: "off",
    mon_max_pg_per_osd: 1000,
    osd_crush_chooseleaf_type: 0,
    // Each pool radosgw creates otherwise costs seconds of monitor proposals.
    paxos_propose_interval: 0.05,
    rgw_frontends: `beast endpoint=127.0.0.1:${ports + 1} tcp_nodelay=1`,
    rgw_gc_obj_min_wait: 10,
    rgw_gc_processor_period: 30,
  };
  const lines = Object.entries(settings).map(([key, value]) => `${key} = ${value}`);
  return `[global]\n${lines.join("\n")}\n`;
}

/** A window of PORTS_PER_INSTANCE ports of PORT_RANGE that nothing listens on right now. */
async function findFreePortWindow(): Promise<number> {
  const windows = Math.floor((PORT_RANGE.last - PORT_RANGE.first + 1) / PORTS_PER_INSTANCE);
  for (let tries = 0; tries < 50; tries++) {
    const first = PORT_RANGE.first + Math.floor(Math.random() * windows) * PORTS_PER_INSTANCE;
    let free = true;
    for (let port = first; port < first + PORTS_PER_INSTANCE && free; port++) free = await isFree(port);
    if (free) return first;
  }
  throw new Error(`no free window of ${PORTS_PER_INSTANCE} ports in ${PORT_RANGE.first}-${PORT_RANGE.last}`);
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", () => resolve(false));
    server.listen({ host: "127.0.0.1", port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

let exitHookRegistered = false;

function registerExitHook(): void {
  if (exitHookRegistered) return;
  exitHookRegistered = true;
  process.on("exit", (code) => {
    for (const instance of liveInstances) {
      instance.killNow();
      if (code === 0) rmSync(instance.baseDir, { recursive: true, force: true });
    }
    liveInstances.clear();
  });
}
