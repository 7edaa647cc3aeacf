/**
 * contrib/systemd/pgwal@.service, checked for real without a running systemd (PID 1 here is not
 * systemd): the directives README promises, `systemd-analyze verify` when it is installed, README's
 * install lines run under a temp root, and the unit's ExecStart run as systemd would run it —
 * instance specifiers expanded, the EnvironmentFile's values (edited to point at a test cluster),
 * User= through setpriv, UMask=, NOTIFY_SOCKET and WATCHDOG_USEC — then stopped with its KillSignal.
 *
 * Substitutions, as in readme-examples.integration.test.ts: /etc and /var/lib/pgwal live under a temp
 * root; User=pgwal is the OS user `pgwal` when it exists, else the test suite's `postgres` user
 * stands in (a system user is not added to the machine); ExecStart's /usr/bin/pgwal is this
 * checkout's bin/pgwal when /usr/bin/pgwal is not installed.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import {
  chmod,
  chown,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rm,
  stat,
  symlink,
  writeFile,
} from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { startSharedCluster, TEST_USERS, TLS_FIXTURES } from "../support/cluster.js";
import { findFreePort } from "../support/free-port.js";
import { startNotifySocket } from "../support/notify-socket.js";
import { isRoot, SERVER_OS_USER } from "../support/run.js";
import { waitFor } from "../support/wait-for.js";
import { PGWAL_BIN, PROJECT_ROOT } from "./cli-harness.js";

const UNIT_FILE = join(PROJECT_ROOT, "contrib", "systemd", "pgwal@.service");
const ENV_EXAMPLE = join(PROJECT_ROOT, "contrib", "systemd", "pgwal.env.example");
const README = readFileSync(join(PROJECT_ROOT, "README.md"), "utf8");
const INSTANCE = "main";
/** systemd's default PATH for services (systemd 252, merged /usr). */
const SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin";

// ---------------------------------------------------------------------------------------------------
// Reading unit files the way systemd does (the subset this unit uses)

type Unit = Map<string, [string, string][]>;

/** Sections of `key=value` lines; `#`/`;` comments; a key may repeat. */
function parseUnit(text: string): Unit {
  const unit: Unit = new Map();
  let section: [string, string][] | undefined;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = [];
      unit.set(header[1]!, section);
      continue;
    }
    const eq = line.indexOf("=");
    assert.ok(section !== undefined && eq > 0, `unit line outside a section or without "=": ${line}`);
    section.push([line.slice(0, eq).trim(), line.slice(eq + 1).trim()]);
  }
  return unit;
}

function directive(unit: Unit, section: string, key: string): string | undefined {
  return unit
    .get(section)
    ?.filter(([k]) => k === key)
    .at(-1)?.[1];
}

/** EnvironmentFile= syntax: KEY=VALUE lines, comments, optional quotes around the value. */
function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line);
    assert.ok(m, `environment file line: ${line}`);
    env[m[1]!] = m[2]!.replace(/^"(.*)"$|^'(.*)'$/, "$1$2");
  }
  return env;
}

/** Instance specifiers; any other specifier would need handling here, so it fails loudly. */
function expandSpecifiers(text: string, instance: string): string {
  return text.replace(/%(.)/g, (_, c: string) => {
    if (c === "i" || c === "I") return instance;
    if (c === "%") return "%";
    throw new Error(`specifier %${c} not handled by this test: ${text}`);
  });
}

/** Seconds of a systemd time span such as "30s", "2min", "120". */
function seconds(span: string): number {
  const m = /^(\d+)\s*(s|sec|min|)$/.exec(span);
  assert.ok(m, `time span ${span}`);
  return Number(m[1]) * (m[2] === "min" ? 60 : 1);
}

/** The "Running under systemd" section of README, and its shell block's command lines. */
function readmeSystemdSection(): { prose: string; commands: string[] } {
  const section = /^### Running under systemd\n([\s\S]*?)^#{2,3} /m.exec(README)?.[1];
  assert.ok(section !== undefined, "README has a Running under systemd section");
  const block = /^```sh\n([\s\S]*?)^```/m.exec(section)?.[1];
  assert.ok(block !== undefined, "with a ```sh block");
  const commands = block
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  return { prose: section.replace(/^```sh\n[\s\S]*?^```/m, ""), commands };
}

const unit = parseUnit(readFileSync(UNIT_FILE, "utf8"));
const service = (key: string) => directive(unit, "Service", key);

// ---------------------------------------------------------------------------------------------------

test("the unit has the directives README promises", () => {
  assert.equal(service("Type"), "notify");
  assert.equal(service("NotifyAccess"), "all");
  assert.equal(service("Restart"), "on-failure");
  assert.equal(seconds(service("RestartSec")!), 30, "README: restarts on failure after 30 s");
  assert.equal(service("KillSignal"), "SIGTERM");
  assert.equal(service("KillMode"), "mixed");
  assert.equal(service("ProtectSystem"), "strict");
  assert.equal(service("ProtectHome"), "read-only");
  assert.equal(service("PrivateTmp"), "true");
  assert.equal(service("NoNewPrivileges"), "true");
  assert.equal(service("StateDirectory"), "pgwal");
  assert.ok(service("WatchdogSec") !== undefined && seconds(service("WatchdogSec")!) > 0);
  // "pgwal@main reads /etc/pgwal/main.env and writes /var/lib/pgwal/main"
  assert.equal(expandSpecifiers(service("EnvironmentFile")!, "main"), "/etc/pgwal/main.env");
  assert.equal(expandSpecifiers(service("ReadWritePaths")!, "main"), "/var/lib/pgwal/main");
  const envExample = parseEnvironmentFile(readFileSync(ENV_EXAMPLE, "utf8"));
  assert.equal(envExample.PGWAL_DIRECTORY, "/var/lib/pgwal/main", "the example env file is for pgwal@main");
  assert.match(service("ExecStart")!, /^\/usr\/bin\/pgwal receive$/);
  assert.equal(directive(unit, "Install", "WantedBy"), "multi-user.target");

  // Every directive README's prose names in backticks (`Key=value` or `Key`) is in the unit so.
  const { prose } = readmeSystemdSection();
  const named = [...prose.matchAll(/`([A-Z][a-z]+[A-Za-z]*)(?:=([^`]*))?`/g)];
  assert.ok(named.length >= 8, `README names unit directives: ${named.map((m) => m[0]).join(" ")}`);
  for (const [, key, value] of named) {
    const actual = service(key!) ?? directive(unit, "Unit", key!);
    assert.ok(actual !== undefined, `the unit sets ${key} (README names it)`);
    if (value !== undefined && value !== "") assert.equal(actual, value, `${key}= as README says`);
  }
});

test("every PGWAL_* variable of the example environment file is a pgwal receive option", () => {
  const text = readFileSync(ENV_EXAMPLE, "utf8");
  const names = [...text.matchAll(/^#?\s*(PGWAL_[A-Z_]+)=/gm)].map((m) => m[1]!);
  assert.ok(names.length >= 5, names.join(" "));
  const help = spawnSync(process.execPath, [PGWAL_BIN, "receive", "--help"], { encoding: "utf8" });
  assert.equal(help.status, 0, help.stderr);
  for (const name of names) {
    const option = `--${name.slice("PGWAL_".length).toLowerCase().replaceAll("_", "-")}`;
    assert.ok(help.stdout.includes(option), `${name}: pgwal receive --help lists ${option}`);
  }
});

test("systemd-analyze verify accepts the unit", (t) => {
  const probe = spawnSync("systemd-analyze", ["--version"], { encoding: "utf8" });
  if (probe.error !== undefined || probe.status !== 0) {
    t.skip("systemd-analyze is not installed");
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), "pgwal-unit-verify-"));
  try {
    // As shipped: the only complaint allowed is a missing /usr/bin/pgwal (not installed on this machine).
    const shipped = join(dir, "pgwal@.service");
    copyFileSync(UNIT_FILE, shipped);
    const asShipped = spawnSync("systemd-analyze", ["verify", shipped], { encoding: "utf8" });
    const pgwalMissing = !existsSync("/usr/bin/pgwal");
    const complaints = `${asShipped.stdout}${asShipped.stderr}`
      .split("\n")
      .filter((l) => l.trim() !== "")
      .filter((l) => !(pgwalMissing && /Command \/usr\/bin\/pgwal is not executable/.test(l)));
    assert.deepEqual(complaints, [], "systemd-analyze verify complaints");
    // With ExecStart pointing at this checkout's launcher it verifies clean (exit 0, no output).
    mkdirSync(join(dir, "with-launcher"));
    const withLauncher = join(dir, "with-launcher", "pgwal@.service");
    writeFileSync(
      withLauncher,
      readFileSync(UNIT_FILE, "utf8").replace(/^ExecStart=\/usr\/bin\/pgwal /m, `ExecStart=${PGWAL_BIN} `),
    );
    const clean = spawnSync("systemd-analyze", ["verify", withLauncher], { encoding: "utf8" });
    assert.equal(clean.status, 0, clean.stdout + clean.stderr);
    assert.equal(`${clean.stdout}${clean.stderr}`.trim(), "");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// ---------------------------------------------------------------------------------------------------
// Running it

const helpers = new Set<ChildProcess>();
let rootDir: string | undefined;
after(async () => {
  for (const helper of helpers) helper.kill("SIGKILL");
  if (rootDir) await rm(rootDir, { recursive: true, force: true });
});

function userEntry(name: string): { uid: number; gid: number; home: string; shell: string } | undefined {
  const line = spawnSync("getent", ["passwd", name], { encoding: "utf8" }).stdout.trim();
  if (line === "") return undefined;
  const [, , uid, gid, , home, shell] = line.split(":");
  return { uid: Number(uid), gid: Number(gid), home: home!, shell: shell! };
}

function sh(command: string, env: NodeJS.ProcessEnv = {}): { status: number | null; output: string } {
  const result = spawnSync("/bin/sh", ["-c", command], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH, ...env },
    encoding: "utf8",
    timeout: 30_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

test("README's install lines, then ExecStart as systemd runs it: READY=1, STATUS=, and SIGTERM exits 0", {
  timeout: 90_000,
}, async (t) => {
  if (!isRoot()) {
    t.skip("needs root: User= is honoured by switching to the unit's user, which only root can do");
    return;
  }
  const unitUser = service("User")!;
  assert.equal(service("Group"), unitUser);
  let user = unitUser;
  let account = userEntry(unitUser);
  if (account === undefined) {
    user = SERVER_OS_USER;
    account = userEntry(user);
    t.diagnostic(`no OS user "${unitUser}" here; "${user}" stands in for User=${unitUser}`);
  }
  assert.ok(account !== undefined, `OS user ${user}`);

  const cluster = await startSharedCluster({ name: "systemd-unit", walSegmentSizeMb: 1 });
  rootDir = await mkdtemp(join(tmpdir(), "pgwal-systemd-"));
  await chmod(rootDir, 0o755);
  const R = rootDir;
  const reroot = (text: string) =>
    text
      .replace(/(?<=^|[\s=.;])\/etc\//g, `${R}/etc/`)
      .replace(/(?<=^|[\s=])\/var\/lib\/pgwal/g, `${R}/var/lib/pgwal`);

  // README's shell block, line by line: each one is run here or accounted for.
  const { commands } = readmeSystemdSection();
  const handled = new Set<string>();
  const handle = (pattern: RegExp) => {
    const line = commands.find((c) => pattern.test(c));
    assert.ok(line !== undefined, `README's systemd block has a line matching ${pattern}`);
    handled.add(line);
    return line;
  };
  const useradd = handle(/^useradd /);
  // Not run (it would add a user to this machine); it must create the unit's user, homed in StateDirectory.
  assert.match(useradd, new RegExp(`--home-dir /var/lib/${service("StateDirectory")} .*\\b${unitUser}$`));
  await mkdir(join(R, "var", "lib"), { recursive: true });
  for (const line of [
    handle(/^install -d /),
    handle(/^install -D .*pgwal@\.service/),
    handle(/^install -D .*\.env/),
  ]) {
    const command = reroot(line).replace(`-o ${unitUser} -g ${unitUser}`, `-o ${user} -g ${user}`);
    const result = sh(command);
    assert.equal(result.status, 0, `${command}\n${result.output}`);
  }
  const archive = join(R, "var", "lib", "pgwal", INSTANCE);
  const archiveInfo = await stat(archive);
  assert.equal(archiveInfo.mode & 0o777, 0o700);
  assert.equal(archiveInfo.uid, account.uid);
  const unitPath = join(R, "etc", "systemd", "system", "pgwal@.service");
  assert.equal((await stat(unitPath)).mode & 0o777, 0o644);
  const installedUnit = parseUnit(await readFile(unitPath, "utf8"));
  assert.deepEqual(installedUnit, unit, "the installed unit is the shipped one");
  // StateDirectory=pgwal: systemd creates /var/lib/pgwal for User= with StateDirectoryMode.
  const stateDir = join(R, "var", "lib", service("StateDirectory")!);
  await chown(stateDir, account.uid, account.gid);
  await chmod(stateDir, Number.parseInt(service("StateDirectoryMode") ?? "0755", 8));

  // "then edit it": the example's settings, pointed at the test cluster (TLS verify-full kept, as
  // localhost with the test CA; the password in a PGPASSFILE as README advises).
  const envPath = reroot(expandSpecifiers(service("EnvironmentFile")!, INSTANCE));
  assert.equal((await stat(envPath)).mode & 0o777, 0o640);
  const metricsPort = await findFreePort();
  const passFile = join(R, "etc", "pgwal", `${INSTANCE}.pgpass`);
  await writeFile(passFile, `*:*:*:${TEST_USERS.scram.name}:${TEST_USERS.scram.password}\n`, { mode: 0o600 });
  await chown(passFile, account.uid, account.gid);
  const edited = reroot(await readFile(envPath, "utf8"))
    .replace(/^PGHOST=.*$/m, "PGHOST=localhost")
    .replace(/^PGPORT=.*$/m, `PGPORT=${cluster.port}`)
    .replace(/^PGUSER=.*$/m, `PGUSER=${TEST_USERS.scram.name}`)
    .replace(/^PGWAL_METRICS_LISTEN=127\.0\.0\.1:\d+$/m, `PGWAL_METRICS_LISTEN=127.0.0.1:${metricsPort}`)
    .concat(`PGSSLROOTCERT=${TLS_FIXTURES.caCert}\nPGPASSFILE=${passFile}\n`);
  await writeFile(envPath, edited);
  const envFile = parseEnvironmentFile(edited);
  assert.equal(envFile.PGSSLMODE, "verify-full");
  assert.equal(envFile.PGWAL_DIRECTORY, archive);
  const slot = envFile.PGWAL_SLOT!;

  // pgwal on PATH for the slot line, as `npm install -g` would put it.
  const binDir = join(R, "usr", "bin");
  await mkdir(binDir, { recursive: true });
  await symlink(PGWAL_BIN, join(binDir, "pgwal"));
  const createSlot = handle(/--create-slot/);
  const slotCommand = reroot(createSlot).replace(`-u ${unitUser} `, `-u ${user} `);
  const created = sh(slotCommand, { PATH: `${binDir}:${SYSTEMD_PATH}:/sbin:/bin` });
  assert.equal(created.status, 0, `${slotCommand}\n${created.output}`);
  assert.equal(
    await cluster.sql(`SELECT slot_type FROM pg_replication_slots WHERE slot_name = '${slot}'`),
    "physical",
  );

  // ExecStart with what systemd puts around it.
  const [program, ...args] = expandSpecifiers(service("ExecStart")!, INSTANCE).split(/\s+/);
  const executable = existsSync(program!) ? program! : PGWAL_BIN;
  if (executable !== program) t.diagnostic(`${program} is not installed; running ${executable}`);
  await mkdir(join(R, "run"), { mode: 0o755 });
  const notifyPath = join(R, "run", "notify.sock");
  const notify = await startNotifySocket(notifyPath);
  helpers.add(notify.child);
  const watchdogUsec = seconds(service("WatchdogSec")!) * 1_000_000;
  const umask = service("UMask") ?? "0022";
  const child = spawn(
    "/bin/sh",
    [
      "-c",
      // The shell's pid becomes the service's main pid (exec), as WATCHDOG_PID says.
      `umask ${umask}; export WATCHDOG_PID=$$; exec setpriv --reuid=${account.uid} --regid=${account.gid} --init-groups -- "$0" "$@"`,
      executable,
      ...args,
    ],
    {
      cwd: "/",
      env: {
        PATH: SYSTEMD_PATH,
        LANG: "C.UTF-8",
        HOME: account.home,
        USER: user,
        LOGNAME: user,
        SHELL: account.shell,
        NOTIFY_SOCKET: notifyPath,
        WATCHDOG_USEC: String(watchdogUsec),
        STATE_DIRECTORY: stateDir,
        ...envFile,
      },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  helpers.add(child);
  let output = "";
  child.stdout.on("data", (c: Buffer) => {
    output += c.toString("utf8");
  });
  child.stderr.on("data", (c: Buffer) => {
    output += c.toString("utf8");
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("close", (code, signal) => resolve({ code, signal })),
  );
  const running = () => {
    if (child.exitCode !== null) throw new Error(`pgwal exited ${child.exitCode}:\n${output}`);
  };
  try {
    const ready = await waitFor("READY=1", () => {
      running();
      return notify.messages.find((m) => m.startsWith("READY=1"));
    });
    assert.match(ready, /^READY=1\|STATUS=streaming from \d+\/[0-9A-F]+ on timeline 1/);
    // Streaming through TLS as the unit's user, into the archive, with the unit's UMask.
    await cluster.sql(
      "CREATE TABLE unit_tick (i int); DO $$ BEGIN FOR i IN 1..3 LOOP INSERT INTO unit_tick VALUES (i); PERFORM pg_switch_wal(); END LOOP; END $$;",
    );
    const segment = await waitFor("a complete segment", async () => {
      running();
      return (await readdir(archive)).find((f) => /^[0-9A-F]{24}$/.test(f));
    });
    const info = await stat(join(archive, segment));
    assert.equal(info.uid, account.uid, "files belong to User=");
    assert.equal(info.mode & 0o777, 0o666 & ~Number.parseInt(umask, 8), `UMask=${umask}`);
    const ssl = await cluster.sql(
      "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_replication r USING (pid) WHERE r.usename = 'repl_scram'",
    );
    assert.equal(ssl, "t", "streams over TLS (PGSSLMODE=verify-full)");
    // README: `systemctl status` shows timeline, received/flushed, server position and lag.
    const status = await waitFor(
      "a STATUS= line with the positions",
      () => {
        running();
        return notify.messages.find((m) => m.startsWith("STATUS=streaming timeline"));
      },
      15_000,
    );
    assert.match(
      status,
      /^STATUS=streaming timeline 1: received \d+\/[0-9A-F]+, flushed \d+\/[0-9A-F]+, server \d+\/[0-9A-F]+ \(lag \d+ bytes\)$/,
    );
    // PGWAL_METRICS_LISTEN from the environment file.
    const health = await fetch(`http://127.0.0.1:${metricsPort}/healthz`);
    assert.equal(health.status, 200, await health.text());
  } finally {
    // KillSignal= to the main process alone (KillMode=mixed).
    child.kill(service("KillSignal")! as NodeJS.Signals);
  }
  const result = await exited;
  assert.deepEqual(result, { code: 0, signal: null }, output);
  await waitFor("STOPPING=1", () => notify.messages.find((m) => m.startsWith("STOPPING=1")));
  notify.child.kill();

  // systemctl needs systemd as PID 1; what they would show is what was asserted above.
  handle(/^systemctl daemon-reload/);
  handle(/^systemctl status/);
  assert.deepEqual(
    commands.filter((c) => !handled.has(c)),
    [],
    "README systemd lines this test does not handle",
  );
});
