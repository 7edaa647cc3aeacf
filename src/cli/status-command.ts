/**
 * `pgwal status DIR [--json] [-d CONNSTR | -h HOST -p PORT -U USER]`: what the archive holds and,
 * when a server is named, where the server is (IDENTIFY_SYSTEM) and how many bytes the archive is
 * behind it. Exit 0 when the status could be shown, 1 otherwise.
 */

import { type TimelineTimes, timelineTimes } from "../archive/recovery-target.js";
import {
  type ArchiveStatus,
  archiveStatus,
  archiveStatusJson,
  formatArchiveStatus,
} from "../archive/status.js";
import { archiveTimeMap } from "../archive/time-map.js";
import { identifySystem } from "../connection/commands.js";
import { formatLsn, parseLsn } from "../lsn.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import { openArchiveLocation } from "./archive-location.js";
import type { CommandIo } from "./command-io.js";
import { buildConnectionSettings, connectFirst } from "./connect.js";
import type { PasswordPrompt } from "./options.js";
import { DIRECTORY_OPTION, directoryFrom, parseSubcommandArgs } from "./subcommand-args.js";

export interface ServerPosition {
  server: string;
  serverVersion: string | null;
  systemIdentifier: string;
  timeline: number;
  /** IDENTIFY_SYSTEM's xlogpos: the server's flush position (write position on a standby). */
  position: string;
  /** Bytes between the archive's newest data and the server's position; null when not comparable. */
  lagBytes: number | null;
  /** Why lagBytes is null, or other remarks (different cluster, timeline). */
  notes: string[];
}

export function statusHelpText(programName: string): string {
  return `${programName} status shows what a pgwal archive holds, and how far behind a server it is.

Usage:
  ${programName} status [OPTION]... DIR

Options:
  -D, --directory=DIR    the archive, instead of DIR (default: $PGWAL_DIRECTORY);
                         DIR may be s3://BUCKET/PREFIX written by receive --target
      --json             print the status as JSON
  -?, --help             show this help, then exit

Connection options (optional: with one of them, the server's position and the lag are shown):
  -d, --dbname=CONNSTR   libpq connection string
  -h, --host=HOSTNAME    server host name or socket directory
  -p, --port=PORT        server port
  -U, --username=NAME    user name to connect as (needs the REPLICATION attribute)
  -w, --no-password      never prompt for a password
  -W, --password         prompt for a password before connecting

Also shows, per timeline, the time range of the archive's commits/aborts and its restore points,
from the archive's time map (kept outside the archive in $STATE_DIRECTORY, else
$XDG_STATE_HOME/pgwal or ~/.local/state/pgwal; its first build reads every WAL record once).
The time map is built for a local archive directory only, not for s3://.
`;
}

const CONNECTION_KEYS = ["dbname", "host", "port", "username"] as const;

/** Lag of the archive behind the server, when both belong to the same cluster. */
export function compareWithServer(
  status: ArchiveStatus,
  server: { systemIdentifier: string; timeline: number; position: string },
): { lagBytes: number | null; notes: string[] } {
  const notes: string[] = [];
  if (status.systemIdentifier !== null && status.systemIdentifier !== server.systemIdentifier) {
    notes.push(
      `the archive holds WAL of database system ${status.systemIdentifier}, the server is ${server.systemIdentifier}`,
    );
    return { lagBytes: null, notes };
  }
  const newestTimeline = status.timelines.at(-1)?.timeline;
  if (newestTimeline !== undefined && newestTimeline !== server.timeline)
    notes.push(
      `the archive's newest timeline is ${newestTimeline}, the server is on timeline ${server.timeline}`,
    );
  if (status.lastLsn === null) {
    notes.push("the archive has no WAL yet");
    return { lagBytes: null, notes };
  }
  const lag = parseLsn(server.position) - parseLsn(status.lastLsn);
  return { lagBytes: lag > 0n ? Number(lag) : 0, notes };
}

export function formatServerPosition(server: ServerPosition): string {
  const lines = [
    `server ${server.server}${server.serverVersion ? ` (PostgreSQL ${server.serverVersion})` : ""}`,
    `  system identifier ${server.systemIdentifier}, timeline ${server.timeline}, position ${server.position}`,
  ];
  if (server.lagBytes !== null) lines.push(`  archive is ${server.lagBytes} bytes behind the server`);
  for (const note of server.notes) lines.push(`  note: ${note}`);
  return `${lines.join("\n")}\n`;
}

export async function runStatusCommand(
  argv: readonly string[],
  programName: string,
  io: CommandIo,
): Promise<number> {
  // Passwords never enter messages (connection strings are echoed masked): nothing to scrub here.
  const fail = (message: string): number => {
    io.stderr(`${programName}: error: ${message}\n`);
    return 1;
  };
  const parsed = parseSubcommandArgs(argv, [
    DIRECTORY_OPTION,
    { key: "json", long: "json", takesValue: false },
    { key: "dbname", short: "d", long: "dbname", takesValue: true },
    { key: "host", short: "h", long: "host", takesValue: true },
    { key: "port", short: "p", long: "port", takesValue: true },
    { key: "username", short: "U", long: "username", takesValue: true },
    { key: "noPassword", short: "w", long: "no-password", takesValue: false },
    { key: "password", short: "W", long: "password", takesValue: false },
  ]);
  if (!parsed.ok) return fail(parsed.message);
  const { args } = parsed;
  if (args.help) {
    io.stdout(statusHelpText(programName));
    return 0;
  }
  if (args.operands.length > 1)
    return fail(`too many command-line arguments (first is "${args.operands[1]}")`);
  const directory = args.operands[0] ?? directoryFrom(args, io.env);
  if (directory === undefined) return fail("no archive directory specified");
  let close: (() => void) | undefined;
  try {
    const opened = await openArchiveLocation(directory, io.env);
    close = opened.close;
    const status = await archiveStatus(opened.archive);
    // The time map reads local files only; a bucket's status has no time ranges.
    const times = typeof opened.archive === "string" ? await timesOf(directory, programName, io) : null;
    const wantsServer = CONNECTION_KEYS.some((key) => args.values.has(key));
    const server = wantsServer ? await serverPosition(args.values, status, programName, io) : undefined;
    if (args.values.has("json")) {
      io.stdout(
        server === undefined && times === null
          ? archiveStatusJson(status)
          : `${JSON.stringify({ ...status, ...(times === null ? {} : { timeMap: times }), ...(server === undefined ? {} : { server }) }, null, 2)}\n`,
      );
    } else {
      io.stdout(
        formatArchiveStatus(status) +
          (times === null ? "" : formatTimelineTimes(times)) +
          (server === undefined ? "" : formatServerPosition(server)),
      );
    }
    return 0;
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  } finally {
    close?.();
  }
}

async function serverPosition(
  values: Map<string, string>,
  status: ArchiveStatus,
  programName: string,
  io: CommandIo,
): Promise<ServerPosition> {
  const settings = buildConnectionSettings(
    {
      dbname: values.get("dbname"),
      host: values.get("host"),
      port: values.get("port"),
      username: values.get("username"),
    },
    programName,
    io.env,
  );
  const prompt: PasswordPrompt = values.has("noPassword")
    ? "never"
    : values.has("password")
      ? "always"
      : "auto";
  const { promptPasswordOnTerminal } = await import("./password-prompt.js");
  const { connection } = await connectFirst(settings, {
    prompt,
    askPassword: () => promptPasswordOnTerminal(),
    logger: warningsOnStderr(programName, io),
  });
  try {
    const identity = await identifySystem(connection);
    const position = formatLsn(identity.xlogpos);
    const systemIdentifier = identity.systemId.toString();
    const compared = compareWithServer(status, { systemIdentifier, timeline: identity.timeline, position });
    return {
      server: connection.target.socketPath ?? `${connection.target.host}:${connection.target.port}`,
      serverVersion: connection.parameters.get("server_version") ?? null,
      systemIdentifier,
      timeline: identity.timeline,
      position,
      ...compared,
    };
  } finally {
    await connection.close().catch(() => undefined);
  }
}

/** Status output goes to stdout; server notices and warnings are worth a line on stderr. */
function warningsOnStderr(programName: string, io: CommandIo): ReceiverLogger {
  const warn = (_fields: Record<string, unknown>, message: string) =>
    io.stderr(`${programName}: warning: ${message}\n`);
  return { debug() {}, info() {}, warn, error: warn };
}

/** The time map's view per timeline; null (with a warning) when it could not be built. */
async function timesOf(
  directory: string,
  programName: string,
  io: CommandIo,
): Promise<TimelineTimes[] | null> {
  try {
    const { map, saveError } = await archiveTimeMap(directory, { env: io.env });
    if (saveError !== null) io.stderr(`${programName}: warning: time map index not saved: ${saveError}\n`);
    return timelineTimes(map);
  } catch (error) {
    io.stderr(
      `${programName}: warning: no time map: ${error instanceof Error ? error.message : String(error)}\n`,
    );
    return null;
  }
}

export function formatTimelineTimes(times: readonly TimelineTimes[]): string {
  const lines: string[] = [];
  for (const timeline of times) {
    lines.push(
      timeline.firstCommit === null
        ? `  timeline ${timeline.timeline}: no commit or abort`
        : `  timeline ${timeline.timeline}: commits/aborts from ${timeline.firstCommit} to ${timeline.lastCommit}`,
    );
    for (const point of timeline.restorePoints)
      lines.push(`    restore point ${JSON.stringify(point.name)} at ${point.time} (${point.lsn})`);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}
