/**
 * Times as PostgreSQL keeps them in WAL (TimestampTz: microseconds since 2000-01-01 00:00 UTC) and
 * as it prints them (ISO DateStyle, here always in UTC: "2026-11-29 16:40:01.123456+00").
 *
 * User input: the ISO 8601 forms of recovery_target_time — "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS[.f]]"
 * (a "T" may replace the space), with an optional zone "Z", "+HH", "+HHMM" or "+HH:MM". Without a
 * zone the time is read in pgwal's local time zone (TZ): the server would use its `timezone`
 * setting, which pgwal cannot know. Other forms (month names, "now", zone names) are refused.
 */

/** Milliseconds from 1970-01-01 to 2000-01-01 (PostgreSQL's epoch). */
const PG_EPOCH_MS = Date.UTC(2000, 0, 1);

/** Microseconds since 2000-01-01 UTC. Numbers are exact for ±285 years around that epoch. */
export type PgTime = number;

export function pgTimeFromUnixSeconds(seconds: number): PgTime {
  return (seconds * 1000 - PG_EPOCH_MS) * 1000;
}

export function formatPgTime(time: PgTime): string {
  const micros = ((time % 1_000_000) + 1_000_000) % 1_000_000;
  const ms = PG_EPOCH_MS + (time - micros) / 1000;
  const iso = new Date(ms).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  const fraction = micros === 0 ? "" : `.${String(micros).padStart(6, "0").replace(/0+$/, "")}`;
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}${fraction}+00`;
}

const ISO_TIME =
  /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?\s*(Z|[+-]\d{2}(?::?\d{2})?)?$/i;

/** Parses a time the user gave; undefined when it is not one of the supported forms. */
export function parsePgTime(text: string): PgTime | undefined {
  const match = ISO_TIME.exec(text.trim());
  if (match === null) return undefined;
  const [, y, mo, d, h = "0", mi = "0", s = "0", fraction = "", zone] = match;
  const parts = [y, mo, d, h, mi, s].map(Number) as [number, number, number, number, number, number];
  const [year, month, day, hour, minute, second] = parts;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 60)
    return undefined;
  let ms: number;
  if (zone === undefined) {
    ms = new Date(year, month - 1, day, hour, minute, second).getTime();
    const check = new Date(ms);
    if (check.getDate() !== day && hour !== 24) return undefined;
  } else {
    ms = Date.UTC(year, month - 1, day, hour, minute, second);
    if (new Date(ms).getUTCDate() !== day && hour !== 24) return undefined;
    if (zone.toUpperCase() !== "Z") {
      const sign = zone.startsWith("-") ? -1 : 1;
      const digits = zone.slice(1).replace(":", "");
      const offsetMinutes = Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || "0");
      if (offsetMinutes > 15 * 60 + 59) return undefined;
      ms -= sign * offsetMinutes * 60_000;
    }
  }
  if (Number.isNaN(ms)) return undefined;
  return (ms - PG_EPOCH_MS) * 1000 + Number(fraction.padEnd(6, "0") || "0");
}
