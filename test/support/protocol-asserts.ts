import assert from "node:assert/strict";
import { ProtocolError } from "../../src/errors.js";

/** Asserts that `fn` throws a ProtocolError (and nothing else), optionally with a matching message. */
export function assertProtocolError(fn: () => unknown, message?: RegExp): ProtocolError {
  let thrown: unknown;
  try {
    fn();
  } catch (error) {
    thrown = error;
  }
  assert.ok(thrown !== undefined, "expected a ProtocolError, but nothing was thrown");
  assert.ok(thrown instanceof ProtocolError, `expected a ProtocolError, got ${String(thrown)}`);
  if (message !== undefined) assert.match(thrown.message, message);
  return thrown;
}

/** Runs `fn`; returns its value, or undefined if it threw a ProtocolError. Any other throw propagates. */
export function valueOrProtocolError<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch (error) {
    if (error instanceof ProtocolError) return undefined;
    throw error;
  }
}

/** Bytes from hex, ignoring spaces: keeps expected vectors readable. */
export function hex(text: string): Buffer {
  return Buffer.from(text.replace(/\s+/g, ""), "hex");
}
