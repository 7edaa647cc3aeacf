/** Durations as operators write them for retention: a number and a unit. */

const DURATION = /^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d|w)$/;
const UNIT_MS: Record<string, number> = {
  s: 1000,
  sec: 1000,
  m: 60_000,
  min: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

/** "90s", "30min", "12h", "7d", "2w" → milliseconds; undefined when not a duration. */
export function parseDuration(text: string): number | undefined {
  const match = DURATION.exec(text.trim());
  if (!match) return undefined;
  const ms = Number(match[1]) * UNIT_MS[match[2]!]!;
  return Number.isFinite(ms) ? ms : undefined;
}
