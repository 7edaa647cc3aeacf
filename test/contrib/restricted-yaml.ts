/**
 * A reader for the small part of YAML that contrib/prometheus/*.yml uses, so the rules can be checked
 * without a YAML dependency: block mappings and block sequences (of mappings or scalars) by
 * indentation, plain and quoted scalars, `#` comments on their own line. Anything else (flow
 * collections, anchors, block scalars, tabs, multi-document files) is an error, not a guess.
 */

export type YamlValue = string | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  indent: number;
  text: string;
  number: number;
}

function scalar(text: string, line: Line): string {
  const value = text.trim();
  if (value.startsWith('"')) {
    if (!/^"(?:[^"\\]|\\.)*"$/.test(value)) throw new Error(`line ${line.number}: unterminated "string"`);
    return JSON.parse(value) as string;
  }
  if (value.startsWith("'")) {
    if (!/^'(?:[^']|'')*'$/.test(value)) throw new Error(`line ${line.number}: unterminated 'string'`);
    return value.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[[{&*!|>%@`]/.test(value)) throw new Error(`line ${line.number}: unsupported YAML: ${value}`);
  if (/\s#/.test(value)) throw new Error(`line ${line.number}: trailing comments are not supported`);
  return value;
}

export function parseRestrictedYaml(source: string): YamlValue {
  const lines: Line[] = [];
  source.split("\n").forEach((raw, index) => {
    if (/^\s*(#.*)?$/.test(raw)) return;
    if (raw.includes("\t")) throw new Error(`line ${index + 1}: tabs are not supported`);
    if (/^(---|\.\.\.)/.test(raw)) throw new Error(`line ${index + 1}: one document only`);
    const indent = raw.length - raw.trimStart().length;
    lines.push({ indent, text: raw.trim(), number: index + 1 });
  });
  let at = 0;

  const block = (indent: number): YamlValue => {
    const first = lines[at];
    if (first === undefined || first.indent !== indent) throw new Error("expected a block");
    return first.text.startsWith("- ") || first.text === "-" ? sequence(indent) : mapping(indent);
  };

  /** The value after `key:` or `- `: inline text, or a deeper block on the following lines. */
  const valueAfter = (inline: string, line: Line, parentIndent: number): YamlValue => {
    if (inline.trim() !== "") return scalar(inline, line);
    const next = lines[at];
    if (next === undefined || next.indent <= parentIndent)
      throw new Error(`line ${line.number}: empty value`);
    return block(next.indent);
  };

  const mapping = (indent: number, seed?: { key: string; rest: string; line: Line }): YamlValue => {
    const result: { [key: string]: YamlValue } = {};
    const entry = (key: string, rest: string, line: Line): void => {
      if (key in result) throw new Error(`line ${line.number}: duplicate key ${key}`);
      result[key] = valueAfter(rest, line, indent);
    };
    if (seed) entry(seed.key, seed.rest, seed.line);
    while (at < lines.length) {
      const line = lines[at] as Line;
      if (line.indent < indent) break;
      if (line.indent > indent) throw new Error(`line ${line.number}: unexpected indentation`);
      const pair = /^([A-Za-z_][A-Za-z0-9_-]*):(?:\s+(.*))?$/.exec(line.text);
      if (!pair) throw new Error(`line ${line.number}: expected "key: value", got ${line.text}`);
      at++;
      entry(pair[1] as string, pair[2] ?? "", line);
    }
    return result;
  };

  const sequence = (indent: number): YamlValue => {
    const items: YamlValue[] = [];
    while (at < lines.length) {
      const line = lines[at] as Line;
      if (line.indent < indent) break;
      if (line.indent > indent || !(line.text.startsWith("- ") || line.text === "-"))
        throw new Error(`line ${line.number}: expected a "- " item`);
      at++;
      const rest = line.text.slice(1).trimStart();
      const pair = /^([A-Za-z_][A-Za-z0-9_-]*):(?:\s+(.*))?$/.exec(rest);
      // "- key: value" opens a mapping whose further keys sit where "key" does.
      if (pair) items.push(mapping(indent + 2, { key: pair[1] as string, rest: pair[2] ?? "", line }));
      else items.push(valueAfter(rest, line, indent));
    }
    return items;
  };

  if (lines.length === 0) throw new Error("empty document");
  const document = block(lines[0]?.indent ?? 0);
  if (at !== lines.length) throw new Error(`line ${lines[at]?.number}: unexpected indentation`);
  return document;
}
