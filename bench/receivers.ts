/**
 * Command lines of the receivers under test. Both get the same pg_receivewal flags; pgwal runs either
 * through bin/pgwal (the CLI) or through bench's own WalReceiver driver (pgwal-driver.ts).
 */
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

export type Tool = "pgwal" | "pg_receivewal";
export const TOOLS: readonly Tool[] = ["pgwal", "pg_receivewal"];

/** dist/bench, where the compiled helper programs live. */
export const BENCH_DIST_DIR = dirname(fileURLToPath(import.meta.url));
/** The repository root (dist/bench/../..). */
export const REPO_ROOT = join(BENCH_DIST_DIR, "..", "..");

export interface ReceiveArgs {
  directory: string;
  /** A host name or address, or the directory of the server's Unix socket. */
  host: string;
  port: number;
  user: string;
  slot: string;
  endpos?: string;
  noSync?: boolean;
  synchronous?: boolean;
  applicationName?: string;
}

export interface Command {
  program: string;
  args: string[];
}

function receiveFlags(a: ReceiveArgs): string[] {
  const flags = [
    "-D",
    a.directory,
    `--slot=${a.slot}`,
    "--no-loop",
    "-h",
    a.host,
    "-p",
    String(a.port),
    "-U",
    a.user,
  ];
  if (a.endpos !== undefined) flags.push(`--endpos=${a.endpos}`);
  if (a.noSync) flags.push("--no-sync");
  if (a.synchronous) flags.push("--synchronous");
  if (a.applicationName !== undefined) flags.push("-d", `application_name=${a.applicationName}`);
  return flags;
}

export function receiverCommand(
  tool: Tool,
  a: ReceiveArgs,
  options: { binDir: string; pgwalCli: boolean; node: string },
): Command {
  if (tool === "pg_receivewal")
    return { program: join(options.binDir, "pg_receivewal"), args: ["-w", ...receiveFlags(a)] };
  if (options.pgwalCli) {
    const launcher = join(REPO_ROOT, "bin", "pgwal");
    if (!existsSync(launcher)) throw new Error(`${launcher} does not exist`);
    // A JavaScript launcher runs under the chosen node; anything else (a shell wrapper) runs by its shebang.
    const firstLine = readFileSync(launcher, "utf8").split("\n", 1)[0] ?? "";
    const viaNode = !firstLine.startsWith("#!") || firstLine.includes("node");
    const args = ["receive", ...receiveFlags(a)];
    return viaNode ? { program: options.node, args: [launcher, ...args] } : { program: launcher, args };
  }
  return { program: options.node, args: [join(BENCH_DIST_DIR, "pgwal-driver.js"), ...receiveFlags(a)] };
}
