/**
 * The hook state file is written durably: temp file, fsync, rename, and the fsync of its
 * directory afterwards (and of the parents of any directory created for it).
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { SegmentHookRunner } from "../../src/hooks/segment-hooks.js";
import { silentLogger } from "../../src/receiver/logger.js";

const SEGMENT = "000000010000000000000001";

test("the state file's directory is fsynced after the rename, and new directories' parents after creation", async () => {
  const base = await mkdtemp(join(tmpdir(), "pgwal-hook-state-"));
  try {
    const archive = join(base, "archive");
    await mkdir(archive);
    await writeFile(join(archive, SEGMENT), "");
    const stateDirectory = join(base, "state", "pgwal");
    const stateFile = join(stateDirectory, "hooks.json");
    const fsynced: { directory: string; stateFileThere: boolean }[] = [];
    const hooks = new SegmentHookRunner({
      command: "true",
      directory: archive,
      stateFile,
      logger: silentLogger,
      fsyncDirectory: async (directory) => {
        fsynced.push({ directory, stateFileThere: existsSync(stateFile) });
      },
    });
    const succeeded = new Promise((resolve) => hooks.once("succeeded", resolve));
    await hooks.start(16 * 1024 * 1024);
    await succeeded;
    await hooks.stop();
    assert.deepEqual(JSON.parse(await readFile(stateFile, "utf8")).done, [SEGMENT]);
    assert.deepEqual(fsynced, [
      // Creating state/ and state/pgwal/: their entries in base/ and state/.
      { directory: join(base, "state"), stateFileThere: false },
      { directory: base, stateFileThere: false },
      // After the rename: the new name in state/pgwal/.
      { directory: stateDirectory, stateFileThere: true },
    ]);
  } finally {
    await rm(base, { recursive: true, force: true });
  }
});
