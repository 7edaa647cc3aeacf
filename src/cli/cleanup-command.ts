/**
 * `pgwal cleanup DIR --before WALFILE | --keep DURATION [--dry-run] [--json] [--force]`: removes
 * what an archive no longer needs (rules in archive/cleanup.ts). Refuses while a receiver holds the
 * archive's lock, unless --force: a retention job and a running receiver are usually a
 * misconfiguration (the receiver's own --retention does the same job in order with its segments).
 * Exit 0 when done (or nothing to do), 1 when it refused or failed.
 */
import { listArchiveDirectory } from "../archive/archive-listing.js";
import { archiveLockHolder } from "../archive/archive-lock.js";
import {
  type CleanupCriteria,
  type CleanupPlan,
  parseCleanupBoundary,
  planCleanup,
  removeArchiveFiles,
} from "../archive/cleanup.js";
import type { CommandIo } from "./command-io.js";
import { parseDuration } from "./duration.js";
import { DIRECTORY_OPTION, directoryFrom, parseSubcommandArgs } from "./subcommand-args.js";

export const CLEANUP_EXIT = { ok: 0, failed: 1 } as const;

export function cleanupHelpText(programName: string): string {
  return `${programName} cleanup removes WAL an archive no longer needs.

Usage:
  ${programName} cleanup [OPTION]... DIR

Options:
  -D, --directory=DIR    the archive, instead of DIR (default: $PGWAL_DIRECTORY)
      --before=WALFILE   remove complete segments before WALFILE (as pg_archivecleanup takes it;
                         a .backup file name stands for the segment its backup starts in)
      --keep=DURATION    keep the segments completed in the last DURATION (e.g. 36h, 7d, 2w)
  -n, --dry-run          list what would be removed, remove nothing
      --json             print the result as JSON
      --force            run even while a receiver holds the archive's lock
  -?, --help             show this help, then exit

Never removed: the newest complete segment, .partial files and timeline history files.
With both --before and --keep, a file is removed only if both allow it.
`;
}

export async function runCleanupCommand(
  argv: readonly string[],
  programName: string,
  io: CommandIo,
  now: () => number = Date.now,
): Promise<number> {
  const fail = (message: string): number => {
    io.stderr(`${programName}: error: ${message}\n`);
    return CLEANUP_EXIT.failed;
  };
  const parsed = parseSubcommandArgs(argv, [
    DIRECTORY_OPTION,
    { key: "before", long: "before", takesValue: true },
    { key: "keep", long: "keep", takesValue: true },
    { key: "dryRun", short: "n", long: "dry-run", takesValue: false },
    { key: "json", long: "json", takesValue: false },
    { key: "force", long: "force", takesValue: false },
  ]);
  if (!parsed.ok) return fail(parsed.message);
  const { args } = parsed;
  if (args.help) {
    io.stdout(cleanupHelpText(programName));
    return CLEANUP_EXIT.ok;
  }
  if (args.operands.length > 1)
    return fail(`too many command-line arguments (first is "${args.operands[1]}")`);
  const directory = args.operands[0] ?? directoryFrom(args, io.env);
  if (directory === undefined) return fail("no archive directory specified");
  if (directory.startsWith("s3://"))
    return fail("cleanup works on a local archive directory, not s3:// (use the bucket's lifecycle rules)");

  const criteria: CleanupCriteria = { now: now() };
  const beforeText = args.values.get("before");
  if (beforeText !== undefined) {
    criteria.before = parseCleanupBoundary(beforeText);
    if (criteria.before === undefined)
      return fail(`invalid WAL file name ${JSON.stringify(beforeText)} for option --before`);
  }
  const keepText = args.values.get("keep");
  if (keepText !== undefined) {
    criteria.keepMs = parseDuration(keepText);
    if (criteria.keepMs === undefined)
      return fail(`invalid duration ${JSON.stringify(keepText)} for option --keep (e.g. 36h, 7d)`);
  }
  if (criteria.before === undefined && criteria.keepMs === undefined)
    return fail("say what to keep: --before WALFILE and/or --keep DURATION");
  const dryRun = args.values.has("dryRun");

  try {
    if (!dryRun && !args.values.has("force")) {
      const holder = await archiveLockHolder(directory);
      if (holder.held) {
        const who = holder.holderPid === undefined ? "a receiver" : `a receiver (pid ${holder.holderPid})`;
        return fail(`${who} is writing archive "${directory}"; stop it, or use --force`);
      }
    }
    const plan = planCleanup(await listArchiveDirectory(directory), criteria);
    if (!dryRun) await removeArchiveFiles(directory, plan.remove);
    io.stdout(args.values.has("json") ? cleanupJson(directory, plan, dryRun) : formatCleanup(plan, dryRun));
    return CLEANUP_EXIT.ok;
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
}

function formatCleanup(plan: CleanupPlan, dryRun: boolean): string {
  const verb = dryRun ? "would remove" : "removed";
  const lines = plan.remove.map((file) => `${verb} ${file.fileName}`);
  const bytes = plan.remove.reduce((sum, file) => sum + (file.bytes ?? 0), 0);
  lines.push(
    `${verb} ${plan.remove.length} file(s), ${bytes} bytes; kept ${plan.keptSegments} complete segment(s)` +
      (plan.oldestKept === null ? "" : `, oldest ${plan.oldestKept}`),
  );
  return `${lines.join("\n")}\n`;
}

function cleanupJson(directory: string, plan: CleanupPlan, dryRun: boolean): string {
  return `${JSON.stringify({ directory, dryRun, ...plan }, null, 2)}\n`;
}
