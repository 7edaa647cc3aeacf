/**
 * SASLprep (RFC 4013) of a password, the way PostgreSQL applies it before SCRAM.
 *
 * PostgreSQL's rules differ from a textbook SASLprep in ways that change the bytes we hash, so we
 * follow PostgreSQL, not the RFC, where they disagree:
 * - A pure-ASCII password is used as is, control characters included (no checks at all).
 * - The prohibited / unassigned / bidi checks look at the string after the mapping step but before
 *   NFKC normalization; the normalized string is what gets hashed.
 * - When SASLprep fails, PostgreSQL (client and server, also when the secret was stored) falls back to
 *   the raw password. `saslprepOrRaw` does the same; `saslprep` reports the failure.
 */
import { AuthenticationError } from "../../errors.js";
import {
  L_CAT,
  MAPPED_TO_NOTHING,
  NON_ASCII_SPACE,
  PROHIBITED,
  RAND_AL_CAT,
  UNASSIGNED,
} from "./saslprep-tables.js";

/** Binary search in a sorted list of inclusive ranges [first, last, first, last, …]. */
function inRanges(ranges: readonly number[], codePoint: number): boolean {
  let low = 0;
  let high = ranges.length / 2 - 1;
  while (low <= high) {
    const middle = (low + high) >> 1;
    if (codePoint < ranges[middle * 2]!) high = middle - 1;
    else if (codePoint > ranges[middle * 2 + 1]!) low = middle + 1;
    else return true;
  }
  return false;
}

type SaslprepResult = { ok: true; value: string } | { ok: false; reason: string };

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

function prepare(password: string): SaslprepResult {
  if (isAscii(password)) return { ok: true, value: password };

  const codePoints: number[] = [];
  for (const char of password) {
    const codePoint = char.codePointAt(0)!;
    // A lone surrogate is what invalid UTF-8 becomes in a JS string; PostgreSQL rejects invalid UTF-8.
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) return { ok: false, reason: "is not valid UTF-8" };
    // Step 1, map: non-ASCII spaces become U+0020, "commonly mapped to nothing" characters vanish.
    if (inRanges(NON_ASCII_SPACE, codePoint)) codePoints.push(0x20);
    else if (!inRanges(MAPPED_TO_NOTHING, codePoint)) codePoints.push(codePoint);
  }
  if (codePoints.length === 0) return { ok: false, reason: "is empty after SASLprep mapping" };

  // Steps 3 and 4 (prohibit, bidi) run on the mapped code points, as PostgreSQL does.
  for (const codePoint of codePoints) {
    if (inRanges(PROHIBITED, codePoint)) return { ok: false, reason: "contains a prohibited character" };
    if (inRanges(UNASSIGNED, codePoint)) {
      return { ok: false, reason: "contains a character unassigned in Unicode 3.2" };
    }
  }
  if (codePoints.some((codePoint) => inRanges(RAND_AL_CAT, codePoint))) {
    if (codePoints.some((codePoint) => inRanges(L_CAT, codePoint))) {
      return { ok: false, reason: "mixes right-to-left and left-to-right characters" };
    }
    if (!inRanges(RAND_AL_CAT, codePoints[0]!) || !inRanges(RAND_AL_CAT, codePoints.at(-1)!)) {
      return {
        ok: false,
        reason: "has right-to-left text that does not start and end with a right-to-left character",
      };
    }
  }

  // Step 2, normalize (NFKC): the result that is hashed.
  return { ok: true, value: String.fromCodePoint(...codePoints).normalize("NFKC") };
}

/**
 * SASLprep of `password`. Throws AuthenticationError when the password cannot be prepared (the message
 * says why, without quoting the password).
 */
export function saslprep(password: string): string {
  const result = prepare(password);
  if (!result.ok) throw new AuthenticationError(`password ${result.reason}; SASLprep does not apply`);
  return result.value;
}

/** SASLprep of `password`, or the password unchanged when SASLprep fails (PostgreSQL's fallback). */
export function saslprepOrRaw(password: string): string {
  const result = prepare(password);
  return result.ok ? result.value : password;
}
