/**
 * Real WAL for the record tests: a workload on a throwaway cluster (pgbench-like transactions,
 * CREATE INDEX, a large INSERT … generate_series, a logical message larger than a segment, commits,
 * an abort, prepared transactions, a restore point, a checkpoint, WAL switches), then its complete
 * segments copied from pg_wal into an archive directory.
 */
import { copyFile, mkdir, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import type { WalRecordEvent } from "../../../src/wal/records/record-events.js";
import { WalRecordReader } from "../../../src/wal/records/record-reader.js";
import type { PgCluster } from "../../support/cluster.js";

export const REAL_WAL_SETTINGS = {
  max_prepared_transactions: 5,
  wal_keep_size: "4GB",
  max_wal_size: "4GB",
  wal_compression: "off",
};

export interface WorkloadFacts {
  commitXids: number[];
  abortXid: number;
  preparedCommitXid: number;
  preparedAbortXid: number;
  restorePoint: string;
  checkpoint: { lsn: string; redo: string; time: number };
  startedAt: number;
  endedAt: number;
}

function lsnText(value: string): string {
  return value.trim().toUpperCase();
}

/** Runs the workload; `scale` multiplies the bulk parts (1 ≈ 25 MB of WAL). */
export async function runWorkload(cluster: PgCluster, scale = 1): Promise<WorkloadFacts> {
  const startedAt = Date.now();
  const txid = async (sql: string): Promise<number> => Number((await cluster.sql(sql)).split("\n")[0]);
  await cluster.sql(
    [
      "SET client_min_messages = warning;",
      "CREATE TABLE accounts (aid int PRIMARY KEY, bid int, abalance int, filler char(84));",
      "CREATE TABLE history (tid int, bid int, aid int, delta int, mtime timestamp, filler char(22));",
      `INSERT INTO accounts SELECT g, g % 10, 0, '' FROM generate_series(1, ${20000 * scale}) g;`,
    ].join("\n"),
  );
  // Many small transactions, each with its own commit record (pgbench's TPC-B-like update).
  await cluster.sql(
    [
      "DO $$ DECLARE i int; a int; BEGIN",
      `  FOR i IN 1..${1500 * scale} LOOP`,
      `    a := 1 + (random() * ${20000 * scale - 1})::int;`,
      "    UPDATE accounts SET abalance = abalance + i WHERE aid = a;",
      "    INSERT INTO history VALUES (i, a % 10, a, i, now(), '');",
      "    COMMIT;",
      "  END LOOP;",
      "END $$;",
    ].join("\n"),
  );
  await cluster.sql("CREATE INDEX accounts_balance ON accounts (abalance, filler);");
  await cluster.sql(
    `CREATE TABLE bulk AS SELECT g AS id, md5(g::text) || repeat('z', 200) AS payload FROM generate_series(1, ${50000 * scale}) g;`,
  );
  // One record of 3 MB: it spans several 1 MB segments.
  await cluster.sql("SELECT pg_logical_emit_message(true, 'pgwal', repeat('y', 3000000));");
  const commitXids: number[] = [];
  for (let i = 0; i < 3; i++) {
    commitXids.push(await txid(`BEGIN; SELECT txid_current(); INSERT INTO history VALUES (${i}); COMMIT;`));
  }
  const abortXid = await txid("BEGIN; SELECT txid_current(); INSERT INTO history VALUES (-1); ROLLBACK;");
  const preparedCommitXid = await txid(
    "BEGIN; SELECT txid_current(); INSERT INTO history VALUES (-2); PREPARE TRANSACTION 'pgwal_p1'; COMMIT PREPARED 'pgwal_p1';",
  );
  const preparedAbortXid = await txid(
    "BEGIN; SELECT txid_current(); INSERT INTO history VALUES (-3); PREPARE TRANSACTION 'pgwal_p2'; ROLLBACK PREPARED 'pgwal_p2';",
  );
  const restorePoint = "pgwal-records-test";
  await cluster.sql(`SELECT pg_create_restore_point('${restorePoint}');`);
  await cluster.sql("CHECKPOINT;");
  const [lsn, redo, time] = (
    await cluster.sql(
      "SELECT checkpoint_lsn, redo_lsn, extract(epoch FROM checkpoint_time)::bigint FROM pg_control_checkpoint();",
    )
  ).split("|") as [string, string, string];
  await cluster.sql("SELECT pg_switch_wal();");
  await cluster.sql("INSERT INTO history VALUES (-4); SELECT pg_switch_wal();");
  return {
    commitXids,
    abortXid,
    preparedCommitXid,
    preparedAbortXid,
    restorePoint,
    checkpoint: { lsn: lsnText(lsn), redo: lsnText(redo), time: Number(time) },
    startedAt,
    endedAt: Date.now(),
  };
}

/**
 * Copies the complete segments of pg_wal (those before the one being written, on its timeline)
 * and the timeline history files into `archive`.
 */
export async function copyCompleteSegments(cluster: PgCluster, archive: string): Promise<string[]> {
  const current = (await cluster.sql("SELECT pg_walfile_name(pg_current_wal_insert_lsn());")).trim();
  await mkdir(archive, { recursive: true });
  const files = await readdir(join(cluster.dataDir, "pg_wal"));
  for (const name of files.filter((file) => /^[0-9A-F]{8}\.history$/.test(file))) {
    await copyFile(join(cluster.dataDir, "pg_wal", name), join(archive, name));
  }
  const names = files
    .filter(
      (name) => /^[0-9A-F]{24}$/.test(name) && name.slice(0, 8) === current.slice(0, 8) && name < current,
    )
    .sort();
  for (const name of names) await copyFile(join(cluster.dataDir, "pg_wal", name), join(archive, name));
  return names;
}

export interface ReadArchive {
  records: Array<{ lsn: bigint; totalLength: number }>;
  events: WalRecordEvent[];
}

/** Every record and event of the plain segment files `names` in `directory`, read in order. */
export async function readRecordsOf(
  directory: string,
  names: string[],
  segmentSize: number,
): Promise<ReadArchive> {
  const result: ReadArchive = { records: [], events: [] };
  const reader = new WalRecordReader({
    segmentSize,
    onRecord: (record) => result.records.push({ lsn: record.lsn, totalLength: record.totalLength }),
    onEvent: (event) => result.events.push(event),
  });
  for (const name of names) {
    const segNo =
      BigInt(`0x${name.slice(8, 16)}`) * (0x1_0000_0000n / BigInt(segmentSize)) +
      BigInt(`0x${name.slice(16)}`);
    const stop = reader.feed(await readFile(join(directory, name)), segNo * BigInt(segmentSize));
    if (stop !== undefined)
      throw new Error(
        `reading ${name} stopped: ${JSON.stringify(stop, (_k, v) => (typeof v === "bigint" ? v.toString(16) : v))}`,
      );
  }
  return result;
}
