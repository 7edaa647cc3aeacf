/**
 * contrib/grafana/pgwal.json and contrib/prometheus/pgwal-alerts.yml query only what pgwal exports:
 * every metric name (and every label a matcher or a grouping names) is checked against the registry of
 * a real ReceiverMetrics, so a renamed or removed metric fails here instead of leaving an empty panel
 * or an alert that can never fire. The other way round, every exported metric has a panel.
 */
import assert from "node:assert/strict";
import { readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { ReceiverMetrics } from "../../src/cli/metrics.js";
import { resolveConnectionSettings } from "../../src/connection/conninfo.js";
import { SegmentHookRunner } from "../../src/hooks/segment-hooks.js";
import { silentLogger } from "../../src/receiver/logger.js";
import { WalReceiver } from "../../src/receiver/receiver.js";
import { grafanaQueryReferences, type PromqlReferences, promqlReferences } from "./promql-names.js";
import { parseRestrictedYaml, type YamlValue } from "./restricted-yaml.js";

const ROOT = fileURLToPath(new URL("../../..", import.meta.url));
const DASHBOARD = join(ROOT, "contrib", "grafana", "pgwal.json");
const ALERT_RULES = join(ROOT, "contrib", "prometheus", "pgwal-alerts.yml");

/** Series Prometheus itself adds to every scrape target, and the labels it attaches. */
const SCRAPE_SERIES = new Set(["up"]);
const TARGET_LABELS = ["job", "instance"];

interface ExportedFamily {
  type: string;
  /** Label names the family's samples carry (le for a histogram's buckets). */
  labels: Set<string>;
  /** The family that a series name belongs to: itself, or a histogram's _bucket/_sum/_count. */
  family: string;
}

/**
 * Every series name a scrape of `pgwal receive --metrics-listen --on-segment …` can show, from the
 * real registry: a receiver (never connected) and a hook runner (never started), with one event of
 * each kind so that labelled series appear.
 */
async function exportedSeries(): Promise<Map<string, ExportedFamily>> {
  const directory = join(tmpdir(), "pgwal-contrib-test-archive");
  const receiver = new WalReceiver({
    connection: resolveConnectionSettings({
      overrides: { host: "127.0.0.1", port: "1", user: "nobody", sslmode: "disable" },
      forced: { replication: "true" },
      env: {},
    }),
    directory,
    logger: silentLogger,
  });
  const hooks = new SegmentHookRunner({
    command: "true",
    directory,
    stateFile: join(directory, "..", "pgwal-contrib-test-hooks.json"),
    logger: silentLogger,
  });
  const metrics = new ReceiverMetrics(receiver, { statusIntervalSeconds: 10, hooks });
  receiver.emit("synced", { durationMs: 2, segmentEnd: false });
  receiver.emit("synced", { durationMs: 3, segmentEnd: true });
  const exposition = await metrics.registry.metrics();

  const types = new Map<string, string>();
  for (const match of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1]!, match[2]!);
  const series = new Map<string, ExportedFamily>();
  for (const [family, type] of types) {
    const names = type === "histogram" ? [`${family}_bucket`, `${family}_sum`, `${family}_count`] : [family];
    for (const name of names) series.set(name, { type, labels: new Set(), family });
  }
  for (const match of exposition.matchAll(/^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})? \S+$/gm)) {
    const entry = series.get(match[1]!);
    assert.ok(entry, `sample ${match[1]} without a # TYPE line`);
    for (const label of (match[2] ?? "").matchAll(/([A-Za-z_][A-Za-z0-9_]*)="/g)) entry.labels.add(label[1]!);
  }
  return series;
}

/** Problems of one expression: names pgwal does not export, labels its series do not carry. */
function problemsOf(
  where: string,
  references: PromqlReferences,
  exported: Map<string, ExportedFamily>,
): string[] {
  const problems: string[] = [];
  const labelsInScope = new Set(TARGET_LABELS);
  for (const { metric, labels } of references.selectors) {
    const entry = exported.get(metric);
    if (entry === undefined && !SCRAPE_SERIES.has(metric)) {
      problems.push(`${where}: ${metric} is not a metric pgwal exports`);
      continue;
    }
    const own = entry?.labels ?? new Set<string>();
    for (const label of own) labelsInScope.add(label);
    for (const label of labels) {
      if (!own.has(label) && !TARGET_LABELS.includes(label))
        problems.push(`${where}: ${metric} has no label ${label}`);
    }
  }
  for (const label of references.groupingLabels) {
    if (!labelsInScope.has(label))
      problems.push(`${where}: no series in the expression has a label ${label}`);
  }
  return problems;
}

/** Every PromQL query of the dashboard: panel targets and the template variables' queries. */
function dashboardQueries(dashboard: unknown): Array<{ where: string; query: string }> {
  const found: Array<{ where: string; query: string }> = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) {
      for (const [index, child] of node.entries()) walk(child, `${where}[${index}]`);
      return;
    }
    if (node === null || typeof node !== "object") return;
    const record = node as Record<string, unknown>;
    const here = typeof record.title === "string" ? `${where} "${record.title}"` : where;
    if (typeof record.expr === "string") found.push({ where: here, query: record.expr });
    for (const [key, value] of Object.entries(record)) {
      if (key === "query" && typeof value === "string" && record.type !== "datasource")
        found.push({ where: `${here}.query`, query: value });
      else if (key === "query" && typeof value === "object" && value !== null) {
        const inner = (value as Record<string, unknown>).query;
        if (typeof inner === "string") found.push({ where: `${here}.query`, query: inner });
      } else if (key === "definition" && typeof value === "string")
        found.push({ where: `${here}.definition`, query: value });
      else walk(value, `${here}.${key}`);
    }
  };
  walk(dashboard, "dashboard");
  return found;
}

function asRecord(value: YamlValue | undefined, what: string): { [key: string]: YamlValue } {
  assert.ok(
    value !== undefined && typeof value === "object" && !Array.isArray(value),
    `${what} is a mapping`,
  );
  return value;
}

function asList(value: YamlValue | undefined, what: string): YamlValue[] {
  assert.ok(Array.isArray(value), `${what} is a list`);
  return value;
}

test("the PromQL reader tells metrics from functions, aggregations, labels, strings and ranges", () => {
  const references = promqlReferences(
    'histogram_quantile(0.99, sum by (le, kind) (rate(pgwal_fsync_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))' +
      ' > 1 and on (instance) pgwal_lag_bytes offset 5m or vector(1) unless max without (kind) (up{job="a,b}"})',
  );
  assert.deepEqual(references.selectors, [
    { metric: "pgwal_fsync_duration_seconds_bucket", labels: ["job"] },
    { metric: "pgwal_lag_bytes", labels: [] },
    { metric: "up", labels: ["job"] },
  ]);
  assert.deepEqual(references.groupingLabels, ["le", "kind", "instance", "kind"]);
  assert.deepEqual(grafanaQueryReferences('label_values(pgwal_streaming{job=~"$job"}, instance)').selectors, [
    { metric: "pgwal_streaming", labels: ["job", "instance"] },
  ]);
  assert.throws(() => promqlReferences("rate(pgwal_lag_bytes{job=}[5m])"), /unreadable label matchers/);
  assert.throws(() => promqlReferences("pgwal_lag_bytes # a comment"), /unreadable PromQL/);
});

test("the restricted YAML reader reads the rules' subset and refuses the rest", () => {
  const parsed = parseRestrictedYaml(
    [
      "# comment",
      "groups:",
      "  - name: g",
      "    rules:",
      '      - alert: "A: quoted"',
      '        expr: up{job="x"} == 0',
      "        labels:",
      "          severity: critical",
      "  - name: h",
      "    list:",
      "      - one",
      "      - 'it''s'",
    ].join("\n"),
  );
  assert.deepEqual(parsed, {
    groups: [
      {
        name: "g",
        rules: [{ alert: "A: quoted", expr: 'up{job="x"} == 0', labels: { severity: "critical" } }],
      },
      { name: "h", list: ["one", "it's"] },
    ],
  });
  assert.throws(() => parseRestrictedYaml("a: [1, 2]"), /unsupported YAML/);
  assert.throws(() => parseRestrictedYaml("a: |\n  text"), /unsupported YAML/);
  assert.throws(() => parseRestrictedYaml("a: 1\na: 2"), /duplicate key/);
  assert.throws(() => parseRestrictedYaml("a:\n  b: 1\n c: 2"), /unexpected indentation/);
});

test("every metric and label the Grafana dashboard queries is one pgwal exports, and every metric has a panel", async () => {
  const exported = await exportedSeries();
  const dashboard = JSON.parse(await readFile(DASHBOARD, "utf8")) as { panels: unknown[] };
  const queries = dashboardQueries(dashboard);
  const targets = dashboard.panels.flatMap((panel) =>
    Array.isArray((panel as { targets?: unknown[] }).targets)
      ? (panel as { targets: unknown[] }).targets
      : [],
  );
  assert.ok(targets.length >= 10, `the dashboard has ${targets.length} panel queries`);
  const problems: string[] = [];
  const queried = new Set<string>();
  for (const { where, query } of queries) {
    const references = grafanaQueryReferences(query);
    if (references.selectors.length === 0) problems.push(`${where}: queries no metric: ${query}`);
    for (const { metric } of references.selectors) {
      const family = exported.get(metric)?.family;
      if (family !== undefined) queried.add(family);
    }
    problems.push(...problemsOf(where, references, exported));
  }
  const families = new Set([...exported.values()].map((entry) => entry.family));
  for (const family of families) {
    if (!queried.has(family)) problems.push(`pgwal exports ${family}, but no panel shows it`);
  }
  assert.deepEqual(problems, []);
});

test("every alert rule is complete and queries only metrics and labels pgwal exports", async () => {
  const exported = await exportedSeries();
  const document = asRecord(parseRestrictedYaml(await readFile(ALERT_RULES, "utf8")), "the rules file");
  const problems: string[] = [];
  const alerts: string[] = [];
  for (const group of asList(document.groups, "groups")) {
    const groupRecord = asRecord(group, "a group");
    for (const rule of asList(groupRecord.rules, `group ${String(groupRecord.name)}: rules`)) {
      const record = asRecord(rule, "a rule");
      const name = String(record.alert);
      assert.match(name, /^Pgwal[A-Za-z]+$/, "every rule is an alert named Pgwal…");
      alerts.push(name);
      assert.equal(typeof record.expr, "string", `${name}: expr`);
      assert.match(String(record.for), /^\d+[smh]$/, `${name}: for`);
      assert.match(String(asRecord(record.labels, `${name}: labels`).severity), /^(critical|warning)$/);
      const annotations = asRecord(record.annotations, `${name}: annotations`);
      assert.equal(typeof annotations.summary, "string", `${name}: summary`);
      assert.equal(typeof annotations.description, "string", `${name}: description`);
      const references = promqlReferences(record.expr as string);
      if (references.selectors.length === 0) problems.push(`${name}: queries no metric`);
      problems.push(...problemsOf(name, references, exported));
    }
  }
  assert.deepEqual(problems, []);
  // The three the operators asked for: receiver down, lag above a threshold, no flush for a while.
  for (const wanted of ["PgwalReceiverDown", "PgwalLagHigh", "PgwalNoFlush"]) {
    assert.ok(alerts.includes(wanted), `${wanted} in ${alerts.join(", ")}`);
  }
});
