/**
 * Argument splitting for the archive commands (restore, verify, status): the same getopt rules as
 * `receive`, an archive directory from an operand, -D/--directory or PGWAL_DIRECTORY, and help.
 */
import { getoptLong, type OptionSpec } from "./getopt.js";
import { envVariableName } from "./options.js";

export interface SubcommandArgs {
  /** The last value of each option given (flags as ""). */
  values: Map<string, string>;
  operands: string[];
  help: boolean;
}

export type SubcommandParse = { ok: true; args: SubcommandArgs } | { ok: false; message: string };

export const HELP_OPTION: OptionSpec = { key: "help", short: "?", long: "help", takesValue: false };
export const DIRECTORY_OPTION: OptionSpec = {
  key: "directory",
  short: "D",
  long: "directory",
  takesValue: true,
};

export function parseSubcommandArgs(argv: readonly string[], specs: readonly OptionSpec[]): SubcommandParse {
  const split = getoptLong(argv, [HELP_OPTION, ...specs]);
  if (!split.ok) return split;
  const values = new Map<string, string>();
  let help = false;
  for (const option of split.options) {
    if (option.key === "help") help = true;
    else values.set(option.key, option.value ?? "");
  }
  return { ok: true, args: { values, operands: split.operands, help } };
}

/** The archive directory: -D/--directory, else PGWAL_DIRECTORY. */
export function directoryFrom(args: SubcommandArgs, env: NodeJS.ProcessEnv): string | undefined {
  const given = args.values.get("directory");
  if (given !== undefined && given !== "") return given;
  const fromEnv = env[envVariableName("directory")];
  return fromEnv === undefined || fromEnv === "" ? undefined : fromEnv;
}
