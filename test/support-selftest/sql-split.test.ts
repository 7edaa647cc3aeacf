/**
 * Unit tests of the harness's psql stand-ins: statement splitting (sql-client.ts) and the TAP reader
 * of the version matrix (matrix.ts). No server needed.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { parseTap } from "../support/matrix.js";
import { splitSqlStatements } from "../support/sql-client.js";

test("splits at top-level semicolons and drops empty statements", () => {
  assert.deepEqual(splitSqlStatements("SELECT 1; SELECT 2;\n\n;  "), ["SELECT 1", "SELECT 2"]);
  assert.deepEqual(splitSqlStatements("SELECT 1"), ["SELECT 1"]);
  assert.deepEqual(splitSqlStatements("  -- only a comment\n /* and another */ "), []);
});

test("semicolons inside literals, identifiers, comments, dollar quotes and parentheses do not split", () => {
  const sql = [
    "SELECT 'a;b', 'it''s;', \"we;ird\" FROM t",
    "SELECT E'back\\';slash'",
    "-- comment; here\nSELECT 1 /* block; /* nested; */ still; */",
    "DO $$ BEGIN PERFORM 1; PERFORM 2; END $$",
    "DO $body$ BEGIN RAISE NOTICE '$$;'; END $body$",
    "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)",
    "SELECT $1, a$b FROM x",
  ];
  assert.deepEqual(splitSqlStatements(`${sql.join(";\n")};`), sql);
});

test("an unterminated quote runs to the end (the server reports it)", () => {
  assert.deepEqual(splitSqlStatements("SELECT 'open; SELECT 2"), ["SELECT 'open; SELECT 2"]);
});

test("parseTap: counts, and failed tests with their suite path and error", () => {
  const tap = [
    "TAP version 13",
    "# Subtest: suite A",
    "    # Subtest: passes",
    "    ok 1 - passes",
    "    # Subtest: breaks",
    "    not ok 2 - breaks",
    "      ---",
    "      failureType: 'testCodeFailure'",
    "      error: 'only 0 complete segments'",
    "      code: 'ERR_ASSERTION'",
    "      ...",
    "not ok 1 - suite A",
    "  ---",
    "  failureType: 'subtestsFailed'",
    "  error: '1 subtest failed'",
    "  ...",
    "# Subtest: top level",
    "not ok 2 - top level",
    "  ---",
    "  failureType: 'testCodeFailure'",
    "  error: |-",
    "    operator does not exist: pg_lsn + integer",
    "  ...",
    "# pass 1",
    "# fail 2",
    "# skipped 0",
  ].join("\n");
  const summary = parseTap(tap);
  assert.equal(summary.pass, 1);
  assert.equal(summary.fail, 2);
  assert.deepEqual(summary.failed, [
    { path: "suite A > breaks", error: "only 0 complete segments" },
    { path: "top level", error: "operator does not exist: pg_lsn + integer" },
  ]);
});
