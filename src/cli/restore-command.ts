/**
 * `pgwal restore %f %p [--directory DIR]`, for restore_command. Exit 0 when restored; 1 when the
 * archive does not have the file, printing nothing (recovery asks for files past the end of the
 * archive all the time); 128 with one line on stderr for every failure: a corrupt file, an I/O
 * error, a missing or unusable archive directory, a wrong command line. PostgreSQL reads any
 * status from 1 to 125 as "not in the archive" and would end a recovery early; a status above 125
 * stops it, so the failure lands in the server log instead of being mistaken for the end of the archive.
 */
import { RESTORE_EXIT, restoreExitCode, restoreFile } from "../archive/restore.js";
import { openArchiveLocation } from "./archive-location.js";
import type { CommandIo } from "./command-io.js";
import { DIRECTORY_OPTION, directoryFrom, parseSubcommandArgs } from "./subcommand-args.js";

export function restoreHelpText(programName: string): string {
  return `${programName} restore copies one file from a pgwal archive to where PostgreSQL asks for it.

Usage:
  ${programName} restore [--directory=DIR] WALFILE DESTINATION

In postgresql.conf:
  restore_command = '${programName} restore --directory=/var/lib/pgwal/archive %f %p'

Options:
  -D, --directory=DIR    the archive (default: $PGWAL_DIRECTORY), or
                         s3://BUCKET/PREFIX written by receive --target
  -?, --help             show this help, then exit

Segments stored compressed (.gz, .lz4) or as .partial are restored as plain, full-size segments
after their page headers are checked. Only regular files inside the archive are read.

Exit status: 0 restored; 1 not in the archive (nothing printed); 128 corrupt file, I/O error,
missing archive directory, unreachable or misconfigured bucket, or wrong usage (one line on
stderr): above 125, so that PostgreSQL
stops the recovery instead of taking the failure for the end of the archive.
`;
}

export async function runRestoreCommand(
  argv: readonly string[],
  programName: string,
  io: CommandIo,
): Promise<number> {
  const fail = (message: string): number => {
    io.stderr(`${programName}: error: ${message}\n`);
    return RESTORE_EXIT.failed;
  };
  const parsed = parseSubcommandArgs(argv, [DIRECTORY_OPTION]);
  if (!parsed.ok) return fail(parsed.message);
  if (parsed.args.help) {
    io.stdout(restoreHelpText(programName));
    return RESTORE_EXIT.restored;
  }
  const [fileName, destination, ...extra] = parsed.args.operands;
  if (fileName === undefined || destination === undefined)
    return fail("restore needs the WAL file name and the destination path (%f %p)");
  if (extra.length > 0) return fail(`too many command-line arguments (first is "${extra[0]}")`);
  const directory = directoryFrom(parsed.args, io.env);
  if (directory === undefined) return fail("no archive directory specified (--directory or PGWAL_DIRECTORY)");
  let close: (() => void) | undefined;
  try {
    const opened = await openArchiveLocation(directory, io.env);
    close = opened.close;
    return restoreExitCode(await restoreFile(opened.archive, fileName, destination));
  } catch (error) {
    const code = restoreExitCode(error);
    if (code === RESTORE_EXIT.failed) fail(error instanceof Error ? error.message : String(error));
    return code;
  } finally {
    close?.();
  }
}
