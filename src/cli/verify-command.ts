/**
 * `pgwal verify DIR [--from LSN --to LSN] [--json]`: checks an archive. Exit 0 when it is sound,
 * 1 when problems were found, 2 when it could not be checked (wrong usage, unreadable directory),
 * so a script can tell "the archive is bad" from "the check did not run".
 */

import { parsePgTime } from "../archive/pg-time.js";
import type { RecoveryTarget } from "../archive/recovery-target.js";
import { checkRecoveryTarget, formatTargetCheck } from "../archive/target-check.js";
import {
  formatVerifyReport,
  type VerifyOptions,
  verifyArchive,
  verifyReportJson,
} from "../archive/verify.js";
import { formatVerifyWithRecords, verifyArchiveRecords } from "../archive/verify-records.js";
import { type Lsn, tryParseLsn } from "../lsn.js";
import { openArchiveLocation } from "./archive-location.js";
import type { CommandIo } from "./command-io.js";
import { DIRECTORY_OPTION, directoryFrom, parseSubcommandArgs } from "./subcommand-args.js";

export const VERIFY_EXIT = { ok: 0, problems: 1, error: 2 } as const;

export function verifyHelpText(programName: string): string {
  return `${programName} verify checks every file of a pgwal archive.

Usage:
  ${programName} verify [OPTION]... DIR

Options:
  -D, --directory=DIR    the archive, instead of DIR (default: $PGWAL_DIRECTORY);
                         DIR may be s3://BUCKET/PREFIX written by receive --target
                         (not with --records or a target option)
      --from=LSN         with --to: check that all WAL from LSN ...
      --to=LSN           ... up to LSN is in the archive, on the newest timeline's path
      --records          also read every WAL record and check its CRC, length and xl_prev link
      --target-time=TIME     answer whether recovery to this time is possible, and from
                             which segments (ISO 8601: 2026-11-29 14:05:00[.ffffff][+01]; no
                             zone: local time)
      --target-inclusive=off with --target-time: stop before a commit at the target time
                             itself, like recovery_target_inclusive = off (default on)
      --target-name=NAME     ... to this restore point (pg_create_restore_point)
      --target-lsn=LSN       ... to this LSN
      --from-backup=LSN      with a target: replay starts at this backup's start LSN
                             (default: the oldest WAL in the archive)
      --json             print the report as JSON
  -?, --help             show this help, then exit

Checks: segment sizes, page headers (magic, address, timeline, system identifier), timeline
history files, and missing segments on the way to the newest timeline. With --records, every
WAL record too: its CRC-32C, its length, and its xl_prev link to the record before.

With a target, only the target is checked (not the files): recovery_target_time is reached when
the archive holds, without a gap from the start, the first commit/abort after the target time
(recovery_target_inclusive = on). The archive's time map is kept outside the archive, in
$STATE_DIRECTORY, else $XDG_STATE_HOME/pgwal or ~/.local/state/pgwal, and refreshed as files change.

Exit status: 0 no problems (with a target: recovery to it is possible); 1 problems found (the
target is not reachable); 2 the check could not run.
`;
}

export async function runVerifyCommand(
  argv: readonly string[],
  programName: string,
  io: CommandIo,
): Promise<number> {
  const fail = (message: string): number => {
    io.stderr(`${programName}: error: ${message}\n`);
    return VERIFY_EXIT.error;
  };
  const parsed = parseSubcommandArgs(argv, [
    DIRECTORY_OPTION,
    { key: "from", long: "from", takesValue: true },
    { key: "to", long: "to", takesValue: true },
    { key: "json", long: "json", takesValue: false },
    { key: "records", long: "records", takesValue: false },
    { key: "targetTime", long: "target-time", takesValue: true },
    { key: "targetName", long: "target-name", takesValue: true },
    { key: "targetLsn", long: "target-lsn", takesValue: true },
    { key: "fromBackup", long: "from-backup", takesValue: true },
    { key: "targetInclusive", long: "target-inclusive", takesValue: true },
  ]);
  if (!parsed.ok) return fail(parsed.message);
  const { args } = parsed;
  if (args.help) {
    io.stdout(verifyHelpText(programName));
    return VERIFY_EXIT.ok;
  }
  if (args.operands.length > 1)
    return fail(`too many command-line arguments (first is "${args.operands[1]}")`);
  const directory = args.operands[0] ?? directoryFrom(args, io.env);
  if (directory === undefined) return fail("no archive directory specified");
  const targets = (["targetTime", "targetName", "targetLsn"] as const).filter((key) => args.values.has(key));
  // The record reader and the time map read local files only.
  if (directory.startsWith("s3://") && (targets.length > 0 || args.values.has("records")))
    return fail("--records and the target options need a local archive directory, not s3://");
  if (targets.length > 1) return fail("--target-time, --target-name and --target-lsn exclude each other");
  if (targets.length === 1) {
    if (args.values.has("records") || args.values.has("from") || args.values.has("to"))
      return fail("a target option does not go with --records, --from or --to");
    return runTargetCheck(directory, targets[0]!, args.values, io, fail, programName);
  }
  if (args.values.has("fromBackup")) return fail("--from-backup needs a target option");
  if (args.values.has("targetInclusive")) return fail("--target-inclusive goes with --target-time");
  const options: VerifyOptions = {};
  for (const key of ["from", "to"] as const) {
    const text = args.values.get(key);
    if (text === undefined) continue;
    const lsn = tryParseLsn(text);
    if (lsn === undefined) return fail(`invalid LSN "${text}" for option --${key}`);
    options[key] = lsn;
  }
  if ((options.from === undefined) !== (options.to === undefined)) return fail("--from and --to go together");
  if (options.from !== undefined && options.to !== undefined && options.from > options.to)
    return fail("--from must not be after --to");
  let close: (() => void) | undefined;
  try {
    const opened = await openArchiveLocation(directory, io.env);
    close = opened.close;
    const report = await verifyArchive(opened.archive, options);
    const records = args.values.has("records") ? await verifyArchiveRecords(directory, options) : undefined;
    const ok = report.ok && (records?.ok ?? true);
    if (args.values.has("json")) {
      io.stdout(
        records ? `${JSON.stringify({ ...report, ok, records }, null, 2)}\n` : verifyReportJson(report),
      );
    } else io.stdout(records ? formatVerifyWithRecords(report, records) : formatVerifyReport(report));
    return ok ? VERIFY_EXIT.ok : VERIFY_EXIT.problems;
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  } finally {
    close?.();
  }
}

async function runTargetCheck(
  directory: string,
  key: "targetTime" | "targetName" | "targetLsn",
  values: Map<string, string>,
  io: CommandIo,
  fail: (message: string) => number,
  programName: string,
): Promise<number> {
  const text = values.get(key)!;
  let target: RecoveryTarget;
  if (key === "targetTime") {
    const time = parsePgTime(text);
    if (time === undefined)
      return fail(
        `invalid time "${text}" for option --target-time (expected ISO 8601, e.g. 2026-11-29 14:05:00+00)`,
      );
    const inclusive = parseBoolean(values.get("targetInclusive") ?? "on");
    if (inclusive === undefined)
      return fail(
        `invalid value "${values.get("targetInclusive")}" for option --target-inclusive (on or off)`,
      );
    target = { kind: "time", time, inclusive };
  } else if (key === "targetLsn") {
    const lsn = tryParseLsn(text);
    if (lsn === undefined) return fail(`invalid LSN "${text}" for option --target-lsn`);
    target = { kind: "lsn", lsn };
  } else {
    // PostgreSQL keeps at most 63 bytes of a restore point name (MAXFNAMELEN - 1).
    if (text === "" || Buffer.byteLength(text) > 63)
      return fail("--target-name must be 1 to 63 bytes, like a restore point name");
    target = { kind: "name", name: text };
  }
  if (key !== "targetTime" && values.has("targetInclusive"))
    return fail("--target-inclusive goes with --target-time");
  let fromBackup: Lsn | undefined;
  const backupText = values.get("fromBackup");
  if (backupText !== undefined) {
    fromBackup = tryParseLsn(backupText);
    if (fromBackup === undefined) return fail(`invalid LSN "${backupText}" for option --from-backup`);
  }
  try {
    const check = await checkRecoveryTarget(directory, target, { env: io.env, fromBackup });
    if (check.indexSaveError !== null)
      io.stderr(`${programName}: warning: time map index not saved: ${check.indexSaveError}\n`);
    io.stdout(values.has("json") ? `${JSON.stringify(check, null, 2)}\n` : formatTargetCheck(check));
    return check.reachable ? VERIFY_EXIT.ok : VERIFY_EXIT.problems;
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  }
}

/** A boolean the way PostgreSQL reads one in a setting (on/off, true/false, yes/no, 1/0). */
function parseBoolean(text: string): boolean | undefined {
  const value = text.trim().toLowerCase();
  if (["on", "true", "yes", "1"].includes(value)) return true;
  if (["off", "false", "no", "0"].includes(value)) return false;
  return undefined;
}
