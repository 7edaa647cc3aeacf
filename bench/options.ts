/**
 * Command-line options of `npm run bench`. `--smoke` shrinks everything so CI can run the whole
 * pipeline (every scenario, every verification) in well under three minutes.
 */
import { existsSync } from "node:fs";
import { parseArgs } from "node:util";
import { LINK_NAMES, type LinkName } from "./links.js";

export interface BenchOptions {
  /** GiB of WAL generated for the catch-up scenarios. */
  gib: number;
  rounds: number;
  /** Seconds to wait between runs (the host reclaims freed memory; a cold run is slower). */
  pauseSeconds: number;
  pgbenchSeconds: number;
  pgbenchClients: number;
  /** Run pgwal through bin/pgwal (the CLI) instead of the in-repo WalReceiver driver. */
  pgwalCli: boolean;
  smoke: boolean;
  jsonPath: string | undefined;
  walSegmentSizeMb: number;
  /** Skip scenario groups (handy while iterating). */
  skipSync: boolean;
  /** The Node.js binary pgwal (and the discard-only receiver) runs under. */
  node: string;
  /** Connection paths measured in the catch-up scenarios. */
  links: LinkName[];
}

export const USAGE = `usage: npm run bench -- [options]
  --gib N               GiB of WAL for the catch-up scenarios (default 2)
  --rounds N            rounds of A B alternation (default 5)
  --pause S             seconds between runs (default 15)
  --pgbench-seconds S   duration of each pgbench run (default 30)
  --pgbench-clients N   pgbench clients (default 8)
  --pgwal-driver        run pgwal through bench's WalReceiver driver instead of "bin/pgwal receive"
  --json PATH           where to write the JSON summary (default bench/results/<timestamp>.json)
  --no-sync-scenario    skip the synchronous-standby scenario
  --links LIST          catch-up connection paths, comma-separated (default: ${LINK_NAMES.join(",")})
  --node PATH           run pgwal under this node binary (default: the one running the bench)
  --smoke               64 MB of WAL, one round, 1 s pauses, 5 s pgbench (CI)
`;

function positiveNumber(value: string | undefined, name: string, fallback: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0)
    throw new Error(`--${name} must be a non-negative number, got "${value}"`);
  return n;
}

export function parseBenchArgs(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      gib: { type: "string" },
      rounds: { type: "string" },
      pause: { type: "string" },
      "pgbench-seconds": { type: "string" },
      "pgbench-clients": { type: "string" },
      "pgwal-driver": { type: "boolean", default: false },
      json: { type: "string" },
      "no-sync-scenario": { type: "boolean", default: false },
      smoke: { type: "boolean", default: false },
      links: { type: "string" },
      node: { type: "string" },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const smoke = values.smoke === true;
  const rounds = Math.round(positiveNumber(values.rounds, "rounds", smoke ? 1 : 5));
  if (rounds < 1) throw new Error("--rounds must be at least 1");
  const links = (values.links ?? LINK_NAMES.join(",")).split(",").map((name) => name.trim());
  for (const name of links) {
    if (!(LINK_NAMES as readonly string[]).includes(name))
      throw new Error(`--links: unknown path "${name}" (known: ${LINK_NAMES.join(", ")})`);
  }
  const node = values.node ?? process.execPath;
  if (!existsSync(node)) throw new Error(`--node: ${node} does not exist`);
  return {
    gib: positiveNumber(values.gib, "gib", smoke ? 1 / 16 : 2),
    rounds,
    pauseSeconds: positiveNumber(values.pause, "pause", smoke ? 1 : 15),
    pgbenchSeconds: Math.max(
      1,
      Math.round(positiveNumber(values["pgbench-seconds"], "pgbench-seconds", smoke ? 5 : 30)),
    ),
    pgbenchClients: Math.max(1, Math.round(positiveNumber(values["pgbench-clients"], "pgbench-clients", 8))),
    pgwalCli: values["pgwal-driver"] !== true,
    smoke,
    jsonPath: values.json,
    walSegmentSizeMb: 16,
    skipSync: values["no-sync-scenario"] === true,
    node,
    links: links as LinkName[],
  };
}
