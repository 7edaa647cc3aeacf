/**
 * Passwords stay out of messages by construction (connection strings are echoed masked), so an
 * error line is never rewritten: a short password must not eat letters or digits of the message.
 */
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { main } from "../../src/cli/main.js";
import { findFreePort } from "../support/free-port.js";

async function receiveAgainstClosedPort(password: string, port: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "pgwal-secrets-"));
  let stderr = "";
  try {
    const status = await main(
      ["node", "pgwal", "receive", "-D", dir, "-h", "127.0.0.1", "-p", String(port), "-U", "x", "-w", "-n"],
      {
        stdout: () => undefined,
        stderr: (text) => {
          stderr += text;
        },
        env: { PGPASSWORD: password, HOME: dir, PGSSLMODE: "disable" },
        stderrIsTerminal: false,
      },
    );
    assert.equal(status, 1);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  return stderr;
}

test("a one-letter password does not turn 'connection' into 'conn***ction'", async () => {
  const port = await findFreePort();
  const stderr = await receiveAgainstClosedPort("e", port);
  assert.match(
    stderr,
    /^pgwal: error: connection to server at "127\.0\.0\.1", port \d+ failed: Connection refused/,
  );
  assert.doesNotMatch(stderr, /\*\*\*/);
});

test("a password equal to the port does not hide the port", async () => {
  const port = await findFreePort();
  const stderr = await receiveAgainstClosedPort(String(port), port);
  assert.match(stderr, new RegExp(`port ${port} failed: Connection refused`));
});

test("a password in a connection string is still masked where the string is echoed", async () => {
  const dir = await mkdtemp(join(tmpdir(), "pgwal-secrets-"));
  let stderr = "";
  try {
    await main(["node", "pgwal", "receive", "-D", dir, "-d", "postgresql://u:hunter2@[::1"], {
      stdout: () => undefined,
      stderr: (text) => {
        stderr += text;
      },
      env: { HOME: dir },
      stderrIsTerminal: false,
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  assert.match(stderr, /postgresql:\/\/u:\*\*\*@\[::1/);
  assert.doesNotMatch(stderr, /hunter2/);
});
