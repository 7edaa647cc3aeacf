/**
 * A mounted power-cut-fs (power-cut-fs.c): a directory in which only what was fsynced survives a
 * power cut. kill -9 of a writer cannot show a missing fsync (the page cache outlives the process);
 * killing this file system's daemon drops everything not fsynced, and `durableDir` then holds
 * exactly the durable state.
 *
 * Needs root, /dev/fuse, gcc, pkg-config and libfuse3-dev (the daemon is compiled once per process).
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand } from "./run.js";
import { waitFor } from "./wait-for.js";

const SOURCE = fileURLToPath(new URL("../../../test/support/power-cut-fs.c", import.meta.url));

let built: Promise<string> | undefined;

/** Compiles power-cut-fs.c (once per process); resolves to the program's path. */
export function buildPowerCutFs(): Promise<string> {
  built ??= (async () => {
    const flags = await runCommand("pkg-config", ["--cflags", "--libs", "fuse3"]).catch((error) => {
      throw new Error(`libfuse3 not found (apt-get install libfuse3-dev pkg-config): ${String(error)}`);
    });
    const directory = await mkdtemp(join(tmpdir(), "pgwal-power-cut-fs-"));
    process.once("exit", () => rmSync(directory, { recursive: true, force: true }));
    const program = join(directory, "power-cut-fs");
    await runCommand("gcc", [
      "-O2",
      "-Wall",
      "-Werror",
      "-o",
      program,
      SOURCE,
      ...flags.stdout.trim().split(/\s+/),
    ]);
    return program;
  })();
  return built;
}

/** Mounted file systems, unmounted at exit whatever the tests did. */
const live = new Set<PowerCutFs>();

export class PowerCutFs {
  /** The real directory holding the durable state (read it only while unmounted, or for checks). */
  readonly durableDir: string;
  /** Where the file system is mounted: the directory under test. */
  readonly mountPoint: string;
  private readonly storeDir: string;
  private daemon: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  private constructor(
    private readonly program: string,
    readonly baseDir: string,
  ) {
    this.durableDir = join(baseDir, "durable");
    this.storeDir = join(baseDir, "store");
    this.mountPoint = join(baseDir, "mnt");
  }

  /** An empty file system mounted in a new temp folder. */
  static async start(name: string): Promise<PowerCutFs> {
    const program = await buildPowerCutFs();
    const fs = new PowerCutFs(program, await mkdtemp(join(tmpdir(), `pgwal-${name}-`)));
    for (const dir of [fs.durableDir, fs.storeDir, fs.mountPoint]) await mkdir(dir);
    registerExitHook();
    await fs.mount();
    return fs;
  }

  get daemonPid(): number | undefined {
    return this.daemon?.pid;
  }

  /** Mounts the durable state. */
  async mount(): Promise<void> {
    if (this.daemon) throw new Error("power-cut-fs is already mounted");
    let stderr = "";
    const daemon = spawn(this.program, [this.durableDir, this.storeDir, this.mountPoint], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    daemon.stderr?.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    this.daemon = daemon;
    live.add(this);
    this.exited = new Promise((resolve) => daemon.once("exit", () => resolve()));
    await waitFor(`power-cut-fs to mount ${this.mountPoint}`, () => {
      if (daemon.exitCode !== null || daemon.signalCode !== null) {
        throw new Error(`power-cut-fs exited before mounting: ${stderr.trim()}`);
      }
      return isMounted(this.mountPoint) ? true : undefined;
    });
  }

  /**
   * Power cut: SIGKILLs the daemon (and `alsoKill`, in the same instant), waits for them, unmounts.
   * Everything not fsynced is gone; `durableDir` is what a reboot would find.
   */
  async cutPower(alsoKill: ChildProcess[] = []): Promise<void> {
    const daemon = this.daemon;
    if (!daemon) throw new Error("power-cut-fs is not mounted");
    const others = alsoKill.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) resolve();
          else child.once("exit", () => resolve());
        }),
    );
    for (const child of alsoKill) child.kill("SIGKILL");
    daemon.kill("SIGKILL");
    await Promise.all([this.exited, ...others]);
    this.daemon = undefined;
    await this.unmount();
  }

  /** Power cut and mount again: the mount then shows the durable state. */
  async cutPowerAndRemount(alsoKill: ChildProcess[] = []): Promise<void> {
    await this.cutPower(alsoKill);
    await this.mount();
  }

  /** Unmounts (after a cut, or without losing anything when nothing is pending) and removes the folder. */
  async destroy(): Promise<void> {
    if (this.daemon) await this.cutPower();
    live.delete(this);
    await rm(this.baseDir, { recursive: true, force: true });
  }

  private async unmount(): Promise<void> {
    // Lazy: files the killed writer had open may still be referenced for a moment.
    if (isMounted(this.mountPoint)) await runCommand("umount", ["-l", this.mountPoint]);
    live.delete(this);
  }
}

function isMounted(mountPoint: string): boolean {
  // /proc/self/mounts escapes spaces etc. as octal; our temp paths have none.
  return readFileSync("/proc/self/mounts", "utf8")
    .split("\n")
    .some((line) => line.split(" ")[1] === mountPoint);
}

let exitHookRegistered = false;

function registerExitHook(): void {
  if (exitHookRegistered) return;
  exitHookRegistered = true;
  process.on("exit", () => {
    for (const fs of live) {
      if (fs.daemonPid !== undefined) {
        try {
          process.kill(fs.daemonPid, "SIGKILL");
        } catch {
          // Already gone.
        }
      }
      if (isMounted(fs.mountPoint)) spawnSync("umount", ["-l", fs.mountPoint], { stdio: "ignore" });
    }
  });
}
