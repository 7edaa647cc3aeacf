/**
 * SIGINT and SIGTERM ask for a clean stop (finish the write in hand, fsync, leave the open segment
 * as .partial, exit 0), as pg_receivewal does. A second signal means the user will not wait: exit
 * at once; the .partial is safe to resume from because nothing renames it before it is complete.
 */

export type StopSignal = "SIGINT" | "SIGTERM";

export const STOP_SIGNALS: readonly StopSignal[] = ["SIGINT", "SIGTERM"];

/** The part of `process` used here, so tests can send signals to a plain EventEmitter. */
export interface SignalSource {
  on(event: StopSignal, listener: (signal: StopSignal) => void): unknown;
  off(event: StopSignal, listener: (signal: StopSignal) => void): unknown;
}

export interface StopHandlers {
  /** First signal: begin a clean stop. */
  stop(signal: StopSignal): void;
  /** Any further signal: give up waiting. */
  force(signal: StopSignal): void;
}

/** Installs the handlers; returns a function that removes them again. */
export function handleStopSignals(handlers: StopHandlers, source: SignalSource = process): () => void {
  let received = 0;
  const listener = (signal: StopSignal) => {
    received += 1;
    if (received === 1) handlers.stop(signal);
    else handlers.force(signal);
  };
  for (const signal of STOP_SIGNALS) source.on(signal, listener);
  return () => {
    for (const signal of STOP_SIGNALS) source.off(signal, listener);
  };
}
