/**
 * A pure command-line splitter with GNU getopt_long semantics, because that is what scripts written
 * for pg_receivewal rely on: attached values (`-hdb1`, `-D/wal`, `--slot=s`), bundled flags (`-nv`),
 * a required value taken from the next word even when it starts with "-" (`-S -x`), unique prefixes
 * of long names (`--dir /wal`), operands mixed with options, and "--" ending the options.
 * yargs-parser differs on each of these, so the drop-in parses with this instead.
 */

export interface OptionSpec {
  /** Key of the option in the result (one per option, shared by its short and long spelling). */
  key: string;
  short?: string;
  long?: string;
  takesValue: boolean;
}

export interface ParsedOption {
  key: string;
  /** The value, or undefined for a flag. */
  value: string | undefined;
  /** How the user spelled it, for messages: "-D" or "--directory". */
  spelling: string;
}

export type GetoptResult =
  | { ok: true; options: ParsedOption[]; operands: string[] }
  /** `message` has getopt's wording ("unrecognized option '--x'"). */
  | { ok: false; message: string };

/** Splits `argv` (without the program name) into options in the order given, and operands. */
export function getoptLong(argv: readonly string[], specs: readonly OptionSpec[]): GetoptResult {
  const options: ParsedOption[] = [];
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const word = argv[i]!;
    if (word === "--") {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (word.startsWith("--")) {
      const equals = word.indexOf("=");
      const name = word.slice(2, equals < 0 ? undefined : equals);
      const match = findLong(name, specs);
      if (match.kind === "none") return { ok: false, message: `unrecognized option '--${name}'` };
      if (match.kind === "ambiguous") {
        const possibilities = match.candidates.map((c) => `'--${c}'`).join(" ");
        return { ok: false, message: `option '--${name}' is ambiguous; possibilities: ${possibilities}` };
      }
      const spec = match.spec;
      const spelling = `--${spec.long}`;
      if (!spec.takesValue) {
        if (equals >= 0) return { ok: false, message: `option '${spelling}' doesn't allow an argument` };
        options.push({ key: spec.key, value: undefined, spelling });
        continue;
      }
      if (equals >= 0) {
        options.push({ key: spec.key, value: word.slice(equals + 1), spelling });
      } else if (i + 1 < argv.length) {
        options.push({ key: spec.key, value: argv[++i]!, spelling });
      } else {
        return { ok: false, message: `option '${spelling}' requires an argument` };
      }
      continue;
    }
    if (word.startsWith("-") && word.length > 1) {
      // A cluster of short options; the first one that takes a value swallows the rest.
      for (let j = 1; j < word.length; j++) {
        const letter = word[j]!;
        const spec = specs.find((s) => s.short === letter);
        if (spec === undefined) return { ok: false, message: `invalid option -- '${letter}'` };
        const spelling = `-${letter}`;
        if (!spec.takesValue) {
          options.push({ key: spec.key, value: undefined, spelling });
          continue;
        }
        if (j + 1 < word.length) {
          options.push({ key: spec.key, value: word.slice(j + 1), spelling });
        } else if (i + 1 < argv.length) {
          options.push({ key: spec.key, value: argv[++i]!, spelling });
        } else {
          return { ok: false, message: `option requires an argument -- '${letter}'` };
        }
        break;
      }
      continue;
    }
    // "-" alone and anything not starting with "-" are operands (GNU permutes them to the end).
    operands.push(word);
  }
  return { ok: true, options, operands };
}

type LongMatch =
  | { kind: "found"; spec: OptionSpec }
  | { kind: "none" }
  | { kind: "ambiguous"; candidates: string[] };

/** Exact name first; else a prefix that names exactly one option. */
function findLong(name: string, specs: readonly OptionSpec[]): LongMatch {
  const exact = specs.find((s) => s.long === name);
  if (exact) return { kind: "found", spec: exact };
  if (name === "") return { kind: "none" };
  const prefixed = specs.filter((s) => s.long?.startsWith(name));
  const distinct = new Set(prefixed.map((s) => s.key));
  if (distinct.size === 1) return { kind: "found", spec: prefixed[0]! };
  if (distinct.size === 0) return { kind: "none" };
  return { kind: "ambiguous", candidates: prefixed.map((s) => s.long!) };
}
