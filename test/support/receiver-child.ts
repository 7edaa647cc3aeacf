/**
 * Runs a WalReceiver in its own process so tests can kill -9 it. Options come as JSON in argv[2];
 * every event is printed as one JSON line on stdout (bigints as strings).
 */
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { SegmentHookRunner } from "../../src/hooks/segment-hooks.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { WalReceiver } from "../../src/receiver/receiver.js";

interface ChildOptions {
  host: string;
  port: number;
  user: string;
  directory: string;
  slot?: string;
  synchronous?: boolean;
  compression?: "gzip" | "lz4";
  statusIntervalSeconds?: number;
  hookCommand?: string;
  hookStateFile?: string;
  hookHoldsSlot?: boolean;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const hooks =
  options.hookCommand !== undefined
    ? new SegmentHookRunner({
        command: options.hookCommand,
        directory: options.directory,
        stateFile: options.hookStateFile ?? `${options.directory}.hooks.json`,
        logger: silentLogger,
        retryDelayMs: { initial: 100, max: 400 },
      })
    : undefined;
const receiver = new WalReceiver({
  connection: resolveConnectionSettings({
    overrides: { host: options.host, port: String(options.port), user: options.user, sslmode: "disable" },
    forced: { replication: "true" },
    env: {},
  }),
  directory: options.directory,
  slot: options.slot,
  synchronous: options.synchronous,
  compression: options.compression === undefined ? undefined : { method: options.compression },
  statusIntervalSeconds: options.statusIntervalSeconds ?? 1,
  logger: silentLogger,
  reconnectDelayMs: { initial: 200, max: 1000 },
  flushCap: options.hookHoldsSlot && hooks ? () => hooks.holdPosition : undefined,
});
if (hooks) {
  receiver.on("connected", (e) => void hooks.start(e.segmentSize));
  receiver.on("segment", (e) => hooks.enqueue(e.path.slice(e.path.lastIndexOf("/") + 1)));
  receiver.on("history", (e) => hooks.enqueue(e.path.slice(e.path.lastIndexOf("/") + 1)));
}
const print = (event: string, data: object) =>
  process.stdout.write(
    `${JSON.stringify({ event, ...data }, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}\n`,
  );
for (const event of ["streaming", "segment", "flushed", "timeline", "disconnected"] as const) {
  receiver.on(event, (data: object) => print(event, data));
}
process.on("SIGTERM", () => receiver.stop());
receiver.run().then(
  (exit) => {
    print("exit", exit);
    process.exit(0);
  },
  (error: Error) => {
    print("error", { message: error.message });
    process.exit(1);
  },
);
