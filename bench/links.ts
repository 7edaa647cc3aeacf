/**
 * How the receivers connect in a scenario. The headline is what users run: no sslmode anywhere,
 * so libpq's default `prefer`, against a server without TLS (it answers 'N' to SSLRequest). TLS
 * (server with a certificate, both receivers with sslmode=require), sslmode=disable and the Unix
 * socket are the other paths a receiver takes.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { PgCluster } from "../test/support/cluster.js";

export type CatchUpMode = "fsync" | "no-sync";
export type LinkName = "default" | "tls" | "disable" | "unix";

export interface Link {
  name: LinkName;
  /** Shown in scenario names: the settings of the row. */
  label: string;
  /** Environment of both receivers (libpq and pgwal read the same PG* variables). */
  env: Record<string, string>;
  /** The server has TLS on; otherwise it answers 'N' to SSLRequest, like a server without certificates. */
  serverTls: boolean;
  /** Connect over the server's Unix socket instead of TCP. */
  unixSocket: boolean;
  /** Catch-up modes measured on this path. */
  modes: readonly CatchUpMode[];
}

export const LINKS: readonly Link[] = [
  {
    name: "default",
    label: "default settings (prefer, server without TLS)",
    env: {},
    serverTls: false,
    unixSocket: false,
    modes: ["fsync", "no-sync"],
  },
  {
    name: "tls",
    label: "TLS (sslmode=require)",
    env: { PGSSLMODE: "require" },
    serverTls: true,
    unixSocket: false,
    modes: ["fsync", "no-sync"],
  },
  {
    name: "disable",
    label: "sslmode=disable",
    env: { PGSSLMODE: "disable" },
    serverTls: false,
    unixSocket: false,
    modes: ["no-sync"],
  },
  {
    name: "unix",
    label: "Unix socket",
    env: {},
    serverTls: false,
    unixSocket: true,
    modes: ["no-sync"],
  },
];

export const LINK_NAMES: readonly LinkName[] = LINKS.map((l) => l.name);

export function linkNamed(name: LinkName): Link {
  const link = LINKS.find((l) => l.name === name);
  if (link === undefined) throw new Error(`unknown link ${name}`);
  return link;
}

/** Turns the server's TLS on or off (a reload is enough) and waits until new sessions see it. */
export async function setServerTls(cluster: PgCluster, on: boolean): Promise<void> {
  const value = on ? "on" : "off";
  if ((await cluster.sql("SHOW ssl")) === value) return;
  await cluster.sql(`ALTER SYSTEM SET ssl = ${value}; SELECT pg_reload_conf();`);
  for (let i = 0; i < 100; i++) {
    if ((await cluster.sql("SHOW ssl")) === value) return;
    await sleep(50);
  }
  throw new Error(`the server's ssl setting did not become ${value}`);
}
