/**
 * What a PromQL expression (as written in a Grafana panel or a Prometheus rule) refers to: the metric
 * names it selects, the label names of their matchers, and the labels it groups or matches on. Just
 * enough of PromQL's lexical structure to tell a metric from a function, an aggregation, a keyword, a
 * label list, a string, a number or a range; it throws on anything it cannot read rather than guess.
 */

export interface PromqlReferences {
  /** Selected metrics, each with the label names its matchers use. */
  selectors: Array<{ metric: string; labels: string[] }>;
  /** Label names in by/without/on/ignoring/group_left/group_right lists. */
  groupingLabels: string[];
}

const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);
const LABEL_LIST_KEYWORDS = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);
const KEYWORDS = new Set(["and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"]);

type Token =
  | { kind: "identifier"; text: string }
  | { kind: "matchers"; labels: string[] }
  | { kind: "punctuation"; text: string };

/** Label names of a `{…}` matcher list (its text without the braces). */
function matcherLabels(body: string): string[] {
  const labels: string[] = [];
  const matcher =
    /\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*(,|$)/y;
  let at = 0;
  while (at < body.length) {
    matcher.lastIndex = at;
    const found = matcher.exec(body);
    if (!found) throw new Error(`unreadable label matchers: {${body}}`);
    labels.push(found[1] as string);
    at = matcher.lastIndex;
  }
  return labels;
}

function tokenize(expression: string): Token[] {
  const tokens: Token[] = [];
  let at = 0;
  const text = expression;
  while (at < text.length) {
    const rest = text.slice(at);
    const space = /^\s+/.exec(rest);
    if (space) {
      at += space[0].length;
      continue;
    }
    const matchers = /^\{((?:[^}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*)\}/.exec(rest);
    if (matchers) {
      tokens.push({ kind: "matchers", labels: matcherLabels(matchers[1] as string) });
      at += matchers[0].length;
      continue;
    }
    // A range or subquery: durations and Grafana's $__rate_interval, nothing to look up.
    const range = /^\[[^\]]*\]/.exec(rest);
    if (range) {
      at += range[0].length;
      continue;
    }
    const string = /^("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)/.exec(rest);
    if (string) {
      tokens.push({ kind: "punctuation", text: "string" });
      at += string[0].length;
      continue;
    }
    // Numbers, durations (offset 5m) and Grafana variables standing for them.
    const number = /^(\d+(\.\d+)?([eE][+-]?\d+)?[a-z]*|\$\{?\w+\}?)/.exec(rest);
    if (number) {
      tokens.push({ kind: "punctuation", text: "number" });
      at += number[0].length;
      continue;
    }
    const identifier = /^[A-Za-z_:][A-Za-z0-9_:]*/.exec(rest);
    if (identifier) {
      tokens.push({ kind: "identifier", text: identifier[0] });
      at += identifier[0].length;
      continue;
    }
    const operator = /^(==|!=|>=|<=|=~|!~|[-+*/%^<>(),])/.exec(rest);
    if (operator) {
      tokens.push({ kind: "punctuation", text: operator[0] });
      at += operator[0].length;
      continue;
    }
    throw new Error(`unreadable PromQL at "${rest.slice(0, 20)}" in: ${expression}`);
  }
  return tokens;
}

export function promqlReferences(expression: string): PromqlReferences {
  const tokens = tokenize(expression);
  const references: PromqlReferences = { selectors: [], groupingLabels: [] };
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as Token;
    if (token.kind === "matchers") throw new Error(`label matchers without a metric name in: ${expression}`);
    if (token.kind !== "identifier") continue;
    const next = tokens[i + 1];
    const opensParen = next?.kind === "punctuation" && next.text === "(";
    if (LABEL_LIST_KEYWORDS.has(token.text)) {
      if (!opensParen) continue; // group_left without a list
      let j = i + 2;
      for (; j < tokens.length; j++) {
        const inList = tokens[j] as Token;
        if (inList.kind === "punctuation" && inList.text === ")") break;
        if (inList.kind === "identifier") references.groupingLabels.push(inList.text);
        else if (!(inList.kind === "punctuation" && inList.text === ","))
          throw new Error(`unexpected token in the label list of ${token.text}: ${expression}`);
      }
      i = j;
      continue;
    }
    if (KEYWORDS.has(token.text)) continue;
    const nextIsModifier = next?.kind === "identifier" && (next.text === "by" || next.text === "without");
    if (opensParen || (AGGREGATIONS.has(token.text) && nextIsModifier)) continue; // function or aggregation
    if (next?.kind === "matchers") {
      references.selectors.push({ metric: token.text, labels: next.labels });
      i++;
    } else {
      references.selectors.push({ metric: token.text, labels: [] });
    }
  }
  return references;
}

/**
 * Grafana's `label_values(selector, label)` variable query: the selector is PromQL, the label is one
 * more label the metric must carry. Other queries are PromQL as they stand.
 */
export function grafanaQueryReferences(query: string): PromqlReferences {
  const labelValues = /^\s*label_values\(\s*(.+?)\s*,\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)\s*$/.exec(query);
  if (!labelValues) return promqlReferences(query);
  const references = promqlReferences(labelValues[1] as string);
  for (const selector of references.selectors) selector.labels.push(labelValues[2] as string);
  return references;
}
