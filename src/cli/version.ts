import { readFileSync } from "node:fs";

/** Newest PostgreSQL major whose pg_receivewal this CLI stands in for. */
export const POSTGRES_COMPAT_VERSION = "18.1";

let cached: string | undefined;

/**
 * pgwal's version from package.json, found relative to this module (dist/src/cli/ → package root)
 * rather than the working directory, so it works when started through a symlink from anywhere.
 */
export function pgwalVersion(): string {
  if (cached === undefined) {
    const text = readFileSync(new URL("../../../package.json", import.meta.url), "utf8");
    const version: unknown = (JSON.parse(text) as { version?: unknown }).version;
    cached = typeof version === "string" ? version : "0.0.0";
  }
  return cached;
}

/** `--version` output: pg_receivewal's first line format, with pgwal's own version after it. */
export function versionLine(programName: string, version: string = pgwalVersion()): string {
  if (programName === "pg_receivewal")
    return `pg_receivewal (PostgreSQL) ${POSTGRES_COMPAT_VERSION} (pgwal ${version})`;
  return `${programName} ${version} (pg_receivewal ${POSTGRES_COMPAT_VERSION} compatible)`;
}
