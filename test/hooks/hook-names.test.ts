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
import fc from "fast-check";
import { checkHistoryFileName } from "../../src/connection/commands.js";
import { PgwalError, ProtocolError, UnsafeFileNameError } from "../../src/errors.js";
import { SegmentHookRunner } from "../../src/hooks/segment-hooks.js";
import { hasControlCharacters } from "../../src/protocol/untrusted-text.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { archiveSuffix, type CompressionMethod } from "../../src/wal/compression.js";
import { historyFileName } from "../../src/wal/names.js";
import { propertySettings, propertyTimeoutMs } from "../support/property-runs.js";

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

const settings = propertySettings(1000);

/** Strings near the names pgwal builds: valid names with something added, removed or changed. */
const nearNames = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc
    .tuple(
      fc.constantFrom(
        "00000002.history",
        "000000010000000000000003",
        "000000010000000000000003.gz",
        "000000010000000000000003.zst",
      ),
      fc.string({ unit: "binary", maxLength: 8 }),
      fc.string({ unit: "binary", maxLength: 8 }),
    )
    .map(([name, before, after]) => `${before}${name}${after}`),
);

test("property: any TIMELINE_HISTORY file name other than the computed one is refused", {
  timeout: propertyTimeoutMs(settings),
}, () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 0xffff_ffff }), nearNames, (timeline, reported) => {
      const expected = historyFileName(timeline);
      if (reported === expected) {
        assert.equal(checkHistoryFileName(timeline, reported), expected);
        return;
      }
      assert.throws(
        () => checkHistoryFileName(timeline, reported),
        (error: unknown) =>
          error instanceof ProtocolError &&
          error.message.startsWith(
            `server reported unexpected history file name for timeline ${timeline}: `,
          ) &&
          !hasControlCharacters(error.message),
      );
    }),
    settings,
  );
  assert.equal(checkHistoryFileName(0x1a, "0000001A.history"), "0000001A.history");
});

test("property: the hook runner takes only names pgwal builds, with the archive's compression suffix", {
  timeout: propertyTimeoutMs(settings),
}, async () => {
  const dir = await mkdtemp(join(tmpdir(), "pgwal-hook-names-"));
  dirs.push(dir);
  fc.assert(
    fc.property(
      nearNames,
      fc.constantFrom("none", "gzip", "lz4", "zstd") as fc.Arbitrary<CompressionMethod>,
      (name, compression) => {
        // Never started: an accepted name is only queued, no shell runs here.
        const runner = new SegmentHookRunner({
          command: "false",
          directory: dir,
          stateFile: join(dir, "state.json"),
          logger: silentLogger,
          compression,
        });
        const suffix = archiveSuffix(compression);
        const built =
          /^[0-9A-F]{8}\.history$/.test(name) ||
          new RegExp(`^[0-9A-F]{24}${suffix.replace(".", "\\.")}$`).test(name);
        if (built) {
          runner.enqueue(name);
          assert.equal(runner.pendingCount, 1);
        } else {
          assert.throws(() => runner.enqueue(name), UnsafeFileNameError);
          assert.equal(runner.pendingCount, 0);
        }
      },
    ),
    settings,
  );
});
