/**
 * Turning runs into the side-by-side table (median and min–max per tool, pgwal/pg_receivewal ratio)
 * and the JSON summary.
 */

import { type Spread, spread } from "./measure.js";
import type { PgbenchRun, ThroughputRun } from "./scenarios.js";

export interface SummaryRow {
  scenario: string;
  metric: string;
  pgwal: Spread | undefined;
  pgReceivewal: Spread | undefined;
  /** pgwal median / pg_receivewal median. */
  ratio: number | undefined;
}

type Metric<R> = { name: string; pick: (run: R) => number };

const THROUGHPUT_METRICS: Metric<ThroughputRun>[] = [
  { name: "MiB/s", pick: (r) => r.mibPerSecond },
  { name: "CPU s/GiB", pick: (r) => r.cpuSecondsPerGib },
  { name: "user CPU s/GiB", pick: (r) => r.userCpuSecondsPerGib },
  { name: "peak RSS MiB", pick: (r) => r.peakRssMib },
  { name: "walsender cores", pick: (r) => r.walsenderCores ?? Number.NaN },
];

const PGBENCH_METRICS: Metric<PgbenchRun>[] = [
  { name: "TPS", pick: (r) => r.tps },
  { name: "latency ms", pick: (r) => r.latencyMs },
];

function rowsFor<R extends { scenario: string; tool: string; problems: string[] }>(
  runs: R[],
  metrics: Metric<R>[],
): SummaryRow[] {
  const rows: SummaryRow[] = [];
  const scenarios = [...new Set(runs.map((r) => r.scenario))];
  for (const scenario of scenarios) {
    // Only verified runs count.
    const ok = runs.filter((r) => r.scenario === scenario && r.problems.length === 0);
    for (const metric of metrics) {
      const of = (tool: string) => {
        // A metric a scenario does not measure (NaN) has no row.
        const values = ok
          .filter((r) => r.tool === tool)
          .map(metric.pick)
          .filter((v) => !Number.isNaN(v));
        return values.length > 0 ? spread(values) : undefined;
      };
      const pgwal = of("pgwal");
      const pgReceivewal = of("pg_receivewal");
      const reference = pgwal ?? of("dd") ?? of("none");
      if (reference === undefined && pgReceivewal === undefined) continue;
      rows.push({
        scenario,
        metric: metric.name,
        pgwal: reference,
        pgReceivewal,
        // A median of zero (user CPU below GNU time's resolution on a short run) has no ratio.
        ratio:
          pgwal && pgReceivewal && pgReceivewal.median > 0 ? pgwal.median / pgReceivewal.median : undefined,
      });
    }
  }
  return rows;
}

export function summarize(throughputRuns: ThroughputRun[], pgbenchRuns: PgbenchRun[]): SummaryRow[] {
  return [...rowsFor(throughputRuns, THROUGHPUT_METRICS), ...rowsFor(pgbenchRuns, PGBENCH_METRICS)];
}

function number(value: number): string {
  if (!Number.isFinite(value)) return "—";
  const abs = Math.abs(value);
  return abs >= 100 ? value.toFixed(0) : abs >= 10 ? value.toFixed(1) : value.toFixed(2);
}

function cell(s: Spread | undefined): string {
  if (s === undefined) return "—";
  return s.values.length === 1 ? number(s.median) : `${number(s.median)} (${number(s.min)}–${number(s.max)})`;
}

/** The readable table; rows without a pg_receivewal figure are references (discard, dd, no standby). */
export function formatTable(rows: SummaryRow[]): string {
  const header = [
    "scenario",
    "metric",
    "pgwal / reference median (min–max)",
    "pg_receivewal median (min–max)",
    "ratio",
  ];
  const body = rows.map((r) => [
    r.scenario,
    r.metric,
    cell(r.pgwal),
    cell(r.pgReceivewal),
    r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}×`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join("  ")
      .trimEnd();
  return [line(header), line(widths.map((w) => "-".repeat(w))), ...body.map(line)].join("\n");
}
