/**
 * Defence in depth against shell injection: the hook runner only takes file names pgwal builds
 * (segment names with the archive's compression suffix, TTTTTTTT.history) and refuses anything
 * else loudly, before a shell could see it.
 */
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { PgwalError } from "../../src/errors.js";
import { SegmentHookRunner } from "../../src/hooks/segment-hooks.js";
import { silentLogger } from "../../src/receiver/logger.js";

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

async function runnerIn(): Promise<{ dir: string; runner: SegmentHookRunner; marker: string }> {
  const dir = await mkdtemp(join(tmpdir(), "pgwal-hook-names-"));
  dirs.push(dir);
  const marker = join(dir, "PWNED");
  const runner = new SegmentHookRunner({
    command: `echo %f >> ${join(dir, "ran.log")}`,
    directory: join(dir),
    stateFile: join(dir, "state", "hooks.json"),
    logger: silentLogger,
    retryDelayMs: { initial: 20, max: 40 },
  });
  return { dir, runner, marker };
}

test("a history name carrying shell syntax is refused with a typed error and never reaches the shell", async () => {
  const { runner, marker } = await runnerIn();
  await runner.start(16 * 1024 * 1024);
  try {
    assert.throws(
      () => runner.enqueue(`00000002.history;touch ${marker};#`),
      (error: unknown) =>
        error instanceof PgwalError &&
        /^refusing to run the segment hook for a file name pgwal did not build: "00000002\.history;touch /.test(
          error.message,
        ),
    );
    await sleep(300);
    assert.equal(existsSync(marker), false, "the injected command ran");
    assert.equal(runner.pendingCount, 0);
  } finally {
    await runner.stop();
  }
});
