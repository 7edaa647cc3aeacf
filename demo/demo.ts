/**
 * The main job from a fresh clone: start a throwaway PostgreSQL, create a physical slot, make some
 * WAL, stream it with the pgwal executable into ./demo-archive (or argv[2]), and say what happened.
 */
import { spawn } from "node:child_process";
import { mkdir, readdir, rm, stat } from "node:fs/promises";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { formatLsn } from "../src/lsn.js";
import { parseWalFileName } from "../src/wal/names.js";
import { PgCluster, TEST_USERS } from "../test/support/cluster.js";

/** "start – end" LSNs of the WAL a segment file (or its .partial) holds room for. */
function segmentRange(fileName: string, segmentSize: number): string {
  const parsed = parseWalFileName(fileName.slice(0, 24), segmentSize);
  if (parsed === undefined) return "";
  const start = parsed.segNo * BigInt(segmentSize);
  return `${formatLsn(start)} – ${formatLsn(start + BigInt(segmentSize))}`;
}

const root = resolve(fileURLToPath(new URL("../..", import.meta.url)));
const archive = resolve(process.argv[2] ?? join(root, "demo-archive"));

async function main(): Promise<number> {
  console.log("starting a throwaway PostgreSQL cluster on 127.0.0.1 …");
  const cluster = await PgCluster.start({ name: "demo" });
  try {
    console.log(`PostgreSQL ${cluster.major} on 127.0.0.1:${cluster.port} (binaries: ${cluster.binDir})`);
    await cluster.sql("SELECT pg_create_physical_replication_slot('pgwal_demo', true)");
    const startLsn = await cluster.sql(
      "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgwal_demo'",
    );
    console.log(`created slot pgwal_demo at ${startLsn}; generating 40 MB of WAL …`);
    await cluster.generateWal(40);
    // Where WAL is flushed now: the insert position after pg_switch_wal() lies past the last record.
    const endLsn = await cluster.sql("SELECT pg_current_wal_flush_lsn()");
    await rm(archive, { recursive: true, force: true });
    await mkdir(archive, { recursive: true, mode: 0o700 });
    const args = ["receive", "-D", archive, "--slot", "pgwal_demo", "--endpos", endLsn, "--no-loop", "-v"];
    args.push("-h", "127.0.0.1", "-p", String(cluster.port), "-U", TEST_USERS.trust.name);
    console.log(`running: pgwal ${args.join(" ")}`);
    const code = await new Promise<number>((done) => {
      const child = spawn(process.execPath, [join(root, "bin", "pgwal"), ...args], {
        stdio: ["ignore", "inherit", "inherit"],
        env: { ...process.env, PGSSLMODE: "disable" },
      });
      child.on("exit", (status) => done(status ?? 1));
    });
    if (code !== 0) {
      console.error(`pgwal exited with status ${code}`);
      return code;
    }
    const files = (await readdir(archive)).sort();
    console.log(`\narchive ${archive}:`);
    for (const name of files) {
      const info = await stat(join(archive, name));
      console.log(
        `  ${name.padEnd(34)} ${segmentRange(name, cluster.walSegmentSize).padEnd(24)} ${info.size} bytes`,
      );
    }
    const restart = await cluster.sql(
      "SELECT restart_lsn FROM pg_replication_slots WHERE slot_name = 'pgwal_demo'",
    );
    console.log(
      `\nstreamed ${startLsn} → ${endLsn}: ${files.filter((f) => /^[0-9A-F]{24}$/.test(f)).length} complete segments;`,
    );
    console.log(`the slot now starts at ${restart} (the server keeps WAL only from there).`);
    return 0;
  } finally {
    await cluster.destroy();
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  },
);
