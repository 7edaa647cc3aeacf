/**
 * Settings for fast-check property tests. PGWAL_PROPERTY_RUNS sets the number of runs of EACH
 * property (default kept small so `npm run test:unit` stays fast; CI raises it). PGWAL_PROPERTY_SEED
 * replays a failing run (fast-check prints the seed and path when a property fails).
 */
export interface PropertySettings {
  numRuns: number;
  seed?: number;
  /** fast-check stops (and fails) after this long, shrinking included: a sync loop cannot be cut by node:test's timeout. */
  interruptAfterTimeLimit: number;
  markInterruptAsFailure: boolean;
}

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer, got "${text}"`);
  return value;
}

export function propertySettings(defaultRuns = 2000): PropertySettings {
  const runs = process.env.PGWAL_PROPERTY_RUNS;
  const seed = process.env.PGWAL_PROPERTY_SEED;
  const numRuns =
    runs === undefined || runs === "" ? defaultRuns : positiveInteger("PGWAL_PROPERTY_RUNS", runs);
  const settings: PropertySettings = {
    numRuns,
    interruptAfterTimeLimit: propertyTimeLimitMs(numRuns),
    markInterruptAsFailure: true,
  };
  if (seed !== undefined && seed !== "") {
    const value = Number(seed);
    if (!Number.isSafeInteger(value))
      throw new Error(`PGWAL_PROPERTY_SEED must be an integer, got "${seed}"`);
    settings.seed = value;
  }
  return settings;
}

/** Generous time budget scaled to the run count (a run takes well under a millisecond). */
function propertyTimeLimitMs(numRuns: number): number {
  return 30_000 + numRuns * 5;
}

/** node:test timeout for a property test: a little above fast-check's own limit. */
export function propertyTimeoutMs(settings: PropertySettings): number {
  return settings.interruptAfterTimeLimit + 10_000;
}
