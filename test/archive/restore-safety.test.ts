/**
 * restore, verify and status against hostile or unlucky archives, without a server: a missing
 * archive directory, links and special files named like WAL, decompression bombs, a `.partial`
 * renamed to its final name in the middle of a lookup, transient I/O errors, and %f values
 * PostgreSQL never asks for. Exit statuses follow PostgreSQL's reading of restore_command: 1 is
 * "not in the archive", anything above 125 stops the recovery.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, rename, rm, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import fc from "fast-check";
import { RESTORE_EXIT, restoreFile } from "../../src/archive/restore.js";
import { archiveStatus } from "../../src/archive/status.js";
import { verifyArchive } from "../../src/archive/verify.js";
import { ArchiveError, StorageError, UsageError } from "../../src/errors.js";
import { lz4CompressFrame } from "../../src/wal/lz4-frame.js";
import { PGWAL_BIN, runPgwal } from "../cli/cli-harness.js";
import { propertySettings } from "../support/property-runs.js";
import { SYNTHETIC_SEGMENT_SIZE, syntheticName, syntheticSegment, writeBomb } from "./synthetic-wal.js";

const NAME = syntheticName(5n);
let root: string;

before(async () => {
  await mkdir("/tmp/h-archive", { recursive: true });
  root = await mkdtemp("/tmp/h-archive/restore-safety-");
});

after(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

async function freshDir(label: string): Promise<string> {
  return mkdtemp(join(root, `${label}-`));
}

/** An archive directory and an empty directory standing for pg_wal. */
async function archiveAndTarget(label: string): Promise<{ archive: string; target: string }> {
  return { archive: await freshDir(`${label}-archive`), target: await freshDir(`${label}-target`) };
}

function lines(text: string): string[] {
  return text.trimEnd().split("\n");
}

describe("exit status: 1 only for 'not in the archive', above 125 for everything else", () => {
  test("a missing or mistyped archive directory stops the recovery with one line on stderr", async () => {
    const { target } = await archiveAndTarget("no-dir");
    const notThere = join(root, "no-such-archive");
    const run = await runPgwal(["restore", "-D", notThere, NAME, join(target, "RECOVERYXLOG")]);
    assert.equal(run.status, RESTORE_EXIT.failed, `status ${run.status}, stderr: ${run.stderr}`);
    assert.ok(run.status! > 125, "PostgreSQL stops recovery only for a status above 125");
    assert.equal(lines(run.stderr).length, 1, run.stderr);
    assert.match(run.stderr, /^pgwal: error: .*no-such-archive/);

    const aFile = join(root, "a-file-not-a-directory");
    await writeFile(aFile, "x");
    const notDir = await runPgwal([
      "restore",
      "-D",
      aFile,
      "00000002.history",
      join(target, "RECOVERYHISTORY"),
    ]);
    assert.equal(notDir.status, RESTORE_EXIT.failed, notDir.stderr);
    assert.equal(lines(notDir.stderr).length, 1, notDir.stderr);
    assert.deepEqual(await readdir(target), []);
  });

  test("a corrupt segment and wrong usage stop the recovery (status 128); a missing file is 1", async () => {
    const { archive, target } = await archiveAndTarget("exit-codes");
    const corrupt = syntheticSegment(5n);
    corrupt.writeUInt16LE(0xdead, 0);
    await writeFile(join(archive, NAME), corrupt);
    const bad = await runPgwal(["restore", "-D", archive, NAME, join(target, "RECOVERYXLOG")]);
    assert.equal(bad.status, 128, bad.stderr);
    assert.match(bad.stderr, /^pgwal: error: .*corrupt/);
    const usage = await runPgwal(["restore", "-D", archive, NAME]);
    assert.equal(usage.status, 128, usage.stderr);
    const missing = await runPgwal([
      "restore",
      "-D",
      archive,
      syntheticName(6n),
      join(target, "RECOVERYXLOG"),
    ]);
    assert.equal(missing.status, 1);
    assert.equal(missing.stdout + missing.stderr, "");
    assert.deepEqual(await readdir(target), []);
  });

  test("a transient I/O error is retried; a corrupt file is not", async () => {
    const { archive, target } = await archiveAndTarget("transient");
    await writeFile(join(archive, NAME), syntheticSegment(5n));
    let failures = 0;
    const result = await restoreFile(archive, NAME, join(target, "RECOVERYXLOG"), {
      beforeLookup: (candidate) => {
        if (candidate === NAME && failures < 2) {
          failures++;
          throw new StorageError(
            "read",
            join(archive, candidate),
            Object.assign(new Error("i/o error"), { code: "EIO" }),
          );
        }
      },
    });
    assert.equal(failures, 2);
    assert.deepEqual(result, { status: "restored", source: NAME, bytes: SYNTHETIC_SEGMENT_SIZE });

    const corrupt = syntheticSegment(5n);
    corrupt.writeUInt16LE(0xdead, 0);
    await writeFile(join(archive, NAME), corrupt);
    let lookups = 0;
    await assert.rejects(
      restoreFile(archive, NAME, join(target, "RECOVERYXLOG2"), {
        beforeLookup: (candidate) => {
          if (candidate === NAME) lookups++;
        },
      }),
      ArchiveError,
    );
    assert.equal(lookups, 1, "corruption is not retried");
  });
});

describe("restore never reads outside the archive", () => {
  test("a symbolic link is refused, whatever it points to", async () => {
    const { archive, target } = await archiveAndTarget("symlink");
    const outside = await freshDir("outside");
    await writeFile(join(outside, "valid-segment"), syntheticSegment(5n));
    await writeFile(join(outside, "secret"), "SECRET\n");
    await symlink(join(outside, "valid-segment"), join(archive, NAME));
    const backupName = `${NAME}.00000028.backup`;
    await symlink(join(outside, "secret"), join(archive, backupName));
    await symlink(join(outside, "secret"), join(archive, "00000002.history"));
    for (const name of [NAME, backupName, "00000002.history"]) {
      await assert.rejects(restoreFile(archive, name, join(target, "out")), ArchiveError, name);
    }
    assert.deepEqual(await readdir(target), [], "nothing was copied out");
  });

  test("a FIFO named like a segment fails at once instead of hanging", async () => {
    const { archive, target } = await archiveAndTarget("fifo");
    execFileSync("mkfifo", [join(archive, NAME)]);
    const run = await runPgwal(["restore", "-D", archive, NAME, join(target, "RECOVERYXLOG")], {
      timeoutMs: 8000,
    });
    assert.equal(run.signal, null, "restore hung on the FIFO and was killed");
    assert.equal(run.status, 128, run.stderr);
    assert.match(run.stderr, /not a regular file/);
  });

  test("a link to /dev/zero is refused without reading it", async () => {
    const { archive, target } = await archiveAndTarget("devzero");
    await symlink("/dev/zero", join(archive, NAME));
    const run = await runPgwal(["restore", "-D", archive, NAME, join(target, "RECOVERYXLOG")], {
      timeoutMs: 30_000,
    });
    assert.equal(run.status, 128, run.stderr);
    assert.match(run.stderr, /symbolic link/);
  });

  test("%f must be a WAL file name PostgreSQL asks for (fast-check)", async () => {
    const { archive, target } = await archiveAndTarget("names");
    // Something a traversal could reach: a valid segment one level up, and files with odd names.
    await writeFile(join(root, NAME), syntheticSegment(5n));
    const validName =
      /^(?:(?!00000000)[0-9A-F]{8}[0-9A-F]{16}(?:\.partial|\.[0-9A-F]{8}\.backup)?|(?!00000000)[0-9A-F]{8}\.history)$/;
    const hostile = fc.oneof(
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.constantFrom("..", ".", "", "/", `../${NAME}`, `${NAME}/`, `${NAME}\0`, NAME.toLowerCase()),
      fc
        .tuple(
          fc.constantFrom("../", "./", "/", "x", "\0", " ", ".."),
          fc.constantFrom(NAME, "00000002.history"),
        )
        .map(([prefix, name]) => prefix + name),
      fc
        .tuple(
          fc.constantFrom(NAME, "00000002.history"),
          fc.constantFrom("/", "\0", ".gz", ".tmp", "x", " ", "\n"),
        )
        .map(([name, suffix]) => name + suffix),
      fc.constantFrom("00000000.history", "000000000000000000000005", "RECOVERYXLOG", "RECOVERYHISTORY"),
    );
    await fc.assert(
      fc.asyncProperty(
        hostile.filter((name) => !validName.test(name)),
        async (name) => {
          await assert.rejects(restoreFile(archive, name, join(target, "out")), UsageError);
        },
      ),
      propertySettings(300),
    );
    const valid = fc.oneof(
      fc.constantFrom(
        NAME,
        `${NAME}.partial`,
        `${NAME}.00000028.backup`,
        "00000002.history",
        "FFFFFFFF.history",
      ),
      fc.stringMatching(/^[0-9A-F]{24}$/).filter((name) => !name.startsWith("00000000")),
    );
    await fc.assert(
      fc.asyncProperty(valid, async (name) => {
        assert.deepEqual(await restoreFile(archive, name, join(target, "out")), { status: "missing" });
      }),
      propertySettings(100),
    );
    assert.deepEqual(await readdir(target), []);
  });
});

describe("verify and status report entries named like WAL that are not regular files", () => {
  test("links, FIFOs and directories are problems, not stray files", { timeout: 30_000 }, async () => {
    const { archive } = await archiveAndTarget("irregular");
    const outside = await freshDir("irregular-outside");
    await writeFile(join(archive, NAME), syntheticSegment(5n));
    await writeFile(join(outside, "six"), syntheticSegment(6n));
    await symlink(join(outside, "six"), join(archive, syntheticName(6n)));
    execFileSync("mkfifo", [join(archive, syntheticName(7n))]);
    await mkdir(join(archive, `${syntheticName(8n)}.gz`));
    await symlink("/dev/zero", join(archive, "00000002.history"));
    const irregular = [
      syntheticName(6n),
      syntheticName(7n),
      `${syntheticName(8n)}.gz`,
      "00000002.history",
    ].sort();

    const report = await verifyArchive(archive);
    assert.equal(report.ok, false);
    assert.deepEqual(
      report.problems
        .filter((problem) => problem.kind === "not-regular-file")
        .map((problem) => problem.file)
        .sort(),
      irregular,
    );
    const status = await archiveStatus(archive);
    assert.deepEqual([...status.irregularFiles].sort(), irregular);
    assert.equal(status.segmentCount, 1);
  });
});

describe("decompression bombs", () => {
  /** Runs `pgwal restore` under /usr/bin/time and returns its exit status and peak RSS in KiB. */
  function restoreWithPeakRss(
    archive: string,
    destination: string,
  ): Promise<{ status: number | null; stderr: string; maxRssKiB: number }> {
    const child = spawn(
      "/usr/bin/time",
      ["-f", "maxrss=%M", process.execPath, PGWAL_BIN, "restore", "-D", archive, NAME, destination],
      {
        stdio: ["ignore", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString("utf8");
    });
    const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
    return new Promise((resolve) => {
      child.on("close", (status) => {
        clearTimeout(timer);
        const rss = /maxrss=(\d+)/.exec(stderr);
        resolve({ status, stderr, maxRssKiB: rss ? Number(rss[1]) : Number.NaN });
      });
    });
  }

  for (const [label, suffix, compress] of [
    ["gzip", ".gz", (data: Buffer) => gzipSync(data, { level: 9 })],
    ["lz4", ".lz4", (data: Buffer) => lz4CompressFrame(data)],
  ] as const) {
    test(`a ${label} bomb is refused with bounded memory`, { timeout: 180_000 }, async () => {
      const { archive, target } = await archiveAndTarget(`bomb-${label}`);
      const size = await writeBomb(join(archive, NAME + suffix), compress, syntheticSegment(5n));
      assert.ok(size < 32 * 1024 * 1024, `the bomb is small on disk (${size} bytes)`);
      const run = await restoreWithPeakRss(archive, join(target, "RECOVERYXLOG"));
      assert.equal(run.status, 128, run.stderr);
      assert.match(run.stderr, /corrupt/);
      assert.ok(run.maxRssKiB < 256 * 1024, `peak RSS ${run.maxRssKiB} KiB while decoding a 2 GiB bomb`);
      assert.deepEqual(await readdir(target), []);
    });
  }
});

describe("restore race with a live receiver", () => {
  test("a .partial renamed to its final name between two lookups is still found", async () => {
    const { archive, target } = await archiveAndTarget("race");
    await writeFile(join(archive, `${NAME}.partial`), syntheticSegment(5n));
    let renamed = false;
    const result = await restoreFile(archive, NAME, join(target, "RECOVERYXLOG"), {
      beforeLookup: async (candidate) => {
        // NAME was just looked up (absent); the receiver finishes the segment before the .partial lookup.
        if (candidate === `${NAME}.gz` && !renamed) {
          renamed = true;
          await rename(join(archive, `${NAME}.partial`), join(archive, NAME));
        }
      },
    });
    assert.ok(renamed);
    assert.deepEqual(result, { status: "restored", source: NAME, bytes: SYNTHETIC_SEGMENT_SIZE });
    assert.ok((await readFile(join(target, "RECOVERYXLOG"))).equals(syntheticSegment(5n)));
  });
});
