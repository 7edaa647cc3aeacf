import assert from "node:assert/strict";
import { test } from "node:test";
import { saslprep, saslprepOrRaw } from "../../../src/connection/auth/saslprep.js";
import { AuthenticationError } from "../../../src/errors.js";

const prepared: [string, string, string][] = [
  ["plain ASCII", "pencil", "pencil"],
  // PostgreSQL skips every check for pure ASCII, so even a control character passes unchanged.
  ["ASCII with a control character (PostgreSQL's fast path)", "a\u0007b", "a\u0007b"],
  // RFC 4013 §3 examples.
  ["soft hyphen mapped to nothing", "I\u00ADX", "IX"],
  ["feminine ordinal indicator (NFKC)", "\u00AA", "a"],
  ["roman numeral nine (NFKC)", "\u2168", "IX"],
  ["non-ASCII space mapped to space", "a\u00A0b\u3000c", "a b c"],
  ["zero-width joiner removed", "ab\u200Dcd", "abcd"],
  // U+200B is in both C.1.2 and B.1; the space mapping is applied first, as in PostgreSQL.
  ["zero-width space becomes a space", "a\u200Bb\u00E9", "a b\u00E9"],
  ["ligature fi (NFKC)", "\uFB01x", "fix"],
  ["composed é stays composed", "caf\u0065\u0301", "caf\u00E9"],
  ["right-to-left string starting and ending with RandALCat", "\u0627\u0031\u0628", "\u0627\u0031\u0628"],
];

for (const [name, input, output] of prepared) {
  test(`saslprep: ${name}`, () => {
    assert.equal(saslprep(input), output);
    assert.equal(saslprepOrRaw(input), output);
  });
}

const rejected: [string, string][] = [
  ["ASCII control inside non-ASCII text", "\u00E9\u0007"],
  ["private use character", "a\uE000\u00E9"],
  ["character unassigned in Unicode 3.2 (emoji)", "pass\u{1F600}"],
  ["RandALCat followed by a digit at the end", "\u0627\u0031"],
  ["RandALCat mixed with LCat", "\u0627a\u0628"],
  ["only characters mapped to nothing", "\u00AD\u200D"],
  ["lone surrogate (invalid UTF-8)", "ab\uD800"],
  ["tagging character", "x\u{E0041}\u00E9"],
];

for (const [name, input] of rejected) {
  test(`saslprep rejects ${name}; saslprepOrRaw falls back to the raw password`, () => {
    assert.throws(() => saslprep(input), AuthenticationError);
    assert.equal(saslprepOrRaw(input), input);
  });
}

test("saslprep error messages do not quote the password", () => {
  const password = "s3cr3t\u{1F600}";
  assert.throws(
    () => saslprep(password),
    (error: unknown) => error instanceof AuthenticationError && !error.message.includes("s3cr3t"),
  );
});
