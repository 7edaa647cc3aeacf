/**
 * The S3 SDK is reached from the CLI only through import(): a receiver without --target never loads
 * it (its memory does not grow). Walks the compiled module graph of the receive command (main.js
 * itself loads it with import()).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

const distSrc = resolve(dirname(fileURLToPath(import.meta.url)), "../../src");

/** Bare specifiers (packages) reachable from `entry`, following static imports only or import() too. */
function reachablePackages(entry: string, followDynamic: boolean): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const pending = [entry];
  const staticImport = /^(?:import|export)\s[^;]*?from\s+"([^"]+)";/gms;
  const sideEffectImport = /^import\s+"([^"]+)";/gm;
  const dynamicImport = /\bimport\(\s*"([^"]+)"\s*\)/g;
  while (pending.length > 0) {
    const file = pending.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    const text = readFileSync(file, "utf8");
    const specifiers = [...text.matchAll(staticImport), ...text.matchAll(sideEffectImport)].map((m) => m[1]!);
    if (followDynamic) specifiers.push(...[...text.matchAll(dynamicImport)].map((m) => m[1]!));
    for (const specifier of specifiers) {
      if (specifier.startsWith(".")) pending.push(resolve(dirname(file), specifier));
      else packages.add(specifier);
    }
  }
  return packages;
}

test("the receive command reaches @aws-sdk/client-s3 only through import()", () => {
  const entry = resolve(distSrc, "cli/receive-command.js");
  const eager = reachablePackages(entry, false);
  assert.ok(eager.has("node:fs") || eager.has("node:fs/promises"), "the walk follows static imports");
  assert.deepEqual(
    [...eager].filter((p) => p.startsWith("@aws-sdk/")),
    [],
  );
  assert.ok(
    reachablePackages(entry, true).has("@aws-sdk/client-s3"),
    "the walk sees the SDK behind import()",
  );
});
