/**
 * `pgwal verify DIR [--from LSN --to LSN] [--json]`: checks an archive. Exit 0 when it is sound,
 * 1 when problems were found, 2 when it could not be checked (wrong usage, unreadable directory),
 * so a script can tell "the archive is bad" from "the check did not run".
 */
import {
  formatVerifyReport,
  type VerifyOptions,
  verifyArchive,
  verifyReportJson,
} from "../archive/verify.js";
import { tryParseLsn } from "../lsn.js";
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
      --from=LSN         with --to: check that all WAL from LSN ...
      --to=LSN           ... up to LSN is in the archive, on the newest timeline's path
      --json             print the report as JSON
  -?, --help             show this help, then exit

Checks: segment sizes, page headers (magic, address, timeline, system identifier), timeline
history files, and missing segments on the way to the newest timeline.

Exit status: 0 no problems; 1 problems found; 2 the check could not run.
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
    io.stdout(args.values.has("json") ? verifyReportJson(report) : formatVerifyReport(report));
    return report.ok ? VERIFY_EXIT.ok : VERIFY_EXIT.problems;
  } catch (error) {
    return fail(error instanceof Error ? error.message : String(error));
  } finally {
    close?.();
  }
}
