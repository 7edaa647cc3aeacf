import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import { archiveSuffix, parseCompressionSpec } from "../../src/wal/compression.js";
import { zstdAvailable } from "../../src/wal/zstd-storage.js";

test("accepted -Z forms", () => {
  const cases: [string, object][] = [
    ["none", { method: "none" }],
    ["0", { method: "none" }],
    ["", { method: "none" }],
    ["none:0", { method: "none", level: 0 }],
    ["gzip", { method: "gzip" }],
    ["5", { method: "gzip", level: 5 }],
    ["9", { method: "gzip", level: 9 }],
    ["-1", { method: "gzip", level: -1 }],
    ["gzip:5", { method: "gzip", level: 5 }],
    ["gzip:level=5", { method: "gzip", level: 5 }],
    ["gzip:level=1,level=9", { method: "gzip", level: 9 }],
    ["lz4", { method: "lz4" }],
    ["lz4:1", { method: "lz4", level: 1 }],
    ["lz4:12", { method: "lz4", level: 12 }],
    ["lz4:level=3", { method: "lz4", level: 3 }],
    ["lz4:0", { method: "lz4", level: 0 }],
  ];
  for (const [text, expected] of cases) assert.deepEqual(parseCompressionSpec(text), expected, text);
});

test("rejected -Z forms carry pg_receivewal's messages", () => {
  const cases: [string, string][] = [
    ["foo", 'unrecognized compression algorithm: "foo"'],
    ["GZIP", 'unrecognized compression algorithm: "GZIP"'],
    [
      "none:1",
      'invalid compression specification: compression algorithm "none" does not accept a compression level',
    ],
    [
      "none:level=3",
      'invalid compression specification: compression algorithm "none" does not accept a compression level',
    ],
    [
      "gzip:0",
      'invalid compression specification: compression algorithm "gzip" expects a compression level between 1 and 9 (default at -1)',
    ],
    [
      "10",
      'invalid compression specification: compression algorithm "gzip" expects a compression level between 1 and 9 (default at -1)',
    ],
    [
      "lz4:13",
      'invalid compression specification: compression algorithm "lz4" expects a compression level between 1 and 12 (default at 0)',
    ],
    [
      "gzip:",
      "invalid compression specification: found empty string where a compression option was expected",
    ],
    ["gzip:level", 'invalid compression specification: compression option "level" requires a value'],
    [
      "gzip:level=x",
      'invalid compression specification: value for compression option "level" must be an integer',
    ],
    ["gzip:fast", 'invalid compression specification: unrecognized compression option: "fast"'],
    [
      "gzip:workers=2",
      'invalid compression specification: compression algorithm "gzip" does not accept a worker count',
    ],
    [
      "lz4:long",
      'invalid compression specification: compression algorithm "lz4" does not support long-distance mode',
    ],
    ["zstd", "compression with ZSTD is not yet supported"],
    ["zstd:3", "compression with ZSTD is not yet supported"],
  ];
  for (const [text, message] of cases) {
    assert.throws(
      () => parseCompressionSpec(text),
      (error: unknown) => error instanceof UsageError && error.message === message,
      `${text} → ${message}`,
    );
  }
});

test("archive suffixes", () => {
  assert.equal(archiveSuffix("none"), "");
  assert.equal(archiveSuffix("gzip"), ".gz");
  assert.equal(archiveSuffix("lz4"), ".lz4");
});

test("zstd is pgwal's own: refused as pg_receivewal refuses it unless allowed, then parsed like PostgreSQL's spec", () => {
  const allowZstd = { allowZstd: true };
  const refusal = (error: unknown) =>
    error instanceof UsageError && error.message === "compression with ZSTD is not yet supported";
  assert.throws(() => parseCompressionSpec("zstd:level=3,long", {}), refusal);
  assert.throws(
    () => parseCompressionSpec("zstd:workers=2", allowZstd),
    (error: unknown) =>
      error instanceof UsageError &&
      error.message ===
        'invalid compression specification: pgwal does not support compression option "workers"',
  );
  assert.throws(
    () => parseCompressionSpec("zstd:23", allowZstd),
    (error: unknown) =>
      error instanceof UsageError && /between -131072 and 22 \(default at 3\)/.test(error.message),
  );
  if (!zstdAvailable()) {
    assert.throws(
      () => parseCompressionSpec("zstd", allowZstd),
      (error: unknown) =>
        error instanceof UsageError &&
        error.message ===
          `compression with zstd needs Node.js 22.15 or later (this is Node.js ${process.version})`,
    );
    return;
  }
  assert.deepEqual(parseCompressionSpec("zstd", allowZstd), { method: "zstd" });
  assert.deepEqual(parseCompressionSpec("zstd:19", allowZstd), { method: "zstd", level: 19 });
  assert.deepEqual(parseCompressionSpec("zstd:level=-5,long", allowZstd), {
    method: "zstd",
    level: -5,
    long: true,
  });
  assert.equal(archiveSuffix("zstd"), ".zst");
});
