/** The archive lock: one holder at a time, per directory (not per path), gone with its process. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";
import { archiveLockHolder, tryLockArchive } from "../../src/archive/archive-lock.js";
import { waitFor } from "../support/wait-for.js";

let workDir: string;
before(async () => {
  workDir = await mkdtemp(join(tmpdir(), "pgwal-lock-"));
});
after(async () => {
  await rm(workDir, { recursive: true, force: true });
});

test("a held lock is seen, with the holder's pid, through any path to the same directory", async () => {
  const archive = join(workDir, "a");
  await mkdir(archive);
  await symlink(archive, join(workDir, "a-link"));
  const attempt = await tryLockArchive(archive);
  assert.ok(attempt.acquired);
  try {
    assert.deepEqual(await archiveLockHolder(archive), { held: true, holderPid: process.pid });
    const second = await tryLockArchive(join(workDir, "a-link"));
    assert.deepEqual(second, { acquired: false, holderPid: process.pid });
    const other = join(workDir, "b");
    await mkdir(other);
    assert.deepEqual(await archiveLockHolder(other), { held: false });
  } finally {
    await attempt.lock.release();
  }
  assert.deepEqual(await archiveLockHolder(archive), { held: false });
});

test("kill -9 of the holder frees the lock: it can never go stale", async () => {
  const archive = join(workDir, "killed");
  await mkdir(archive);
  const lockModule = fileURLToPath(new URL("../../src/archive/archive-lock.js", import.meta.url));
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `const { tryLockArchive } = await import(${JSON.stringify(lockModule)});
       const a = await tryLockArchive(${JSON.stringify(archive)});
       if (!a.acquired) process.exit(3);
       console.log("locked"); setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  try {
    await waitFor("the child to take the lock", () => (output.includes("locked") ? true : undefined), 10_000);
    assert.deepEqual(await archiveLockHolder(archive), { held: true, holderPid: child.pid });
  } finally {
    child.kill("SIGKILL");
  }
  await new Promise((resolve) => child.once("close", resolve));
  assert.deepEqual(await archiveLockHolder(archive), { held: false });
});
