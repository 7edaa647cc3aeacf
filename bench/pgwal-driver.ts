/**
 * A stand-in for `pgwal receive` while the CLI is unfinished: the same pg_receivewal flags the bench
 * uses, mapped onto WalReceiver options. Exits 0 at --endpos or on SIGINT/SIGTERM, 1 on an error.
 */
import { parseArgs } from "node:util";
import { resolveConnectionSettings } from "../src/connection/conninfo.js";
import { parseLsn } from "../src/lsn.js";
import { silentLogger } from "../src/receiver/logger.js";
import { WalReceiver } from "../src/receiver/receiver.js";

const { values } = parseArgs({
  args: process.argv.slice(2),
  options: {
    directory: { type: "string", short: "D" },
    slot: { type: "string" },
    endpos: { type: "string" },
    "no-loop": { type: "boolean", default: false },
    "no-sync": { type: "boolean", default: false },
    synchronous: { type: "boolean", default: false },
    host: { type: "string", short: "h" },
    port: { type: "string", short: "p" },
    username: { type: "string", short: "U" },
    dbname: { type: "string", short: "d" },
    "status-interval": { type: "string", short: "s" },
  },
  strict: true,
});

if (values.directory === undefined) {
  process.stderr.write("pgwal-driver: -D DIR is required\n");
  process.exit(2);
}

// The connection is set up as the bench asks (PGSSLMODE in the environment, libpq's default otherwise).
const overrides: Record<string, string> = {};
if (process.env.PGSSLMODE !== undefined) overrides.sslmode = process.env.PGSSLMODE;
if (values.host !== undefined) overrides.host = values.host;
if (values.port !== undefined) overrides.port = values.port;
if (values.username !== undefined) overrides.user = values.username;

const receiver = new WalReceiver({
  connection: resolveConnectionSettings({
    connectionString: values.dbname,
    overrides,
    forced: { replication: "true" },
    env: {},
  }),
  directory: values.directory,
  slot: values.slot,
  endpos: values.endpos === undefined ? undefined : parseLsn(values.endpos),
  noLoop: values["no-loop"],
  noSync: values["no-sync"],
  synchronous: values.synchronous,
  statusIntervalSeconds: values["status-interval"] === undefined ? 10 : Number(values["status-interval"]),
  logger: silentLogger,
});

for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => receiver.stop());

receiver.run().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`pgwal-driver: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
