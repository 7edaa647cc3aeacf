/**
 * The ceiling: pgwal's protocol layer receiving the same stream and throwing the bytes away (no
 * disk). It still checks that the stream is contiguous from the slot's start to --endpos and
 * prints what it received as JSON, so the run is verified like the others.
 *
 *   node dist/bench/discard-receiver.js HOST PORT USER SLOT ENDPOS
 *
 * It connects as PGSSLMODE in its environment says (libpq's default `prefer` without it).
 */
import { readFile } from "node:fs/promises";
import {
  identifySystem,
  parseMemorySetting,
  readReplicationSlot,
  showSetting,
  startReplication,
} from "../src/connection/commands.js";
import { PgConnection } from "../src/connection/connection.js";
import { resolveConnectionSettings } from "../src/connection/conninfo.js";
import { formatLsn, type Lsn, parseLsn, segmentStartOf } from "../src/lsn.js";
import {
  PRIMARY_KEEPALIVE,
  parsePrimaryKeepalive,
  parseXLogData,
  pgTimestampNow,
  standbyStatusUpdateMessage,
  XLOG_DATA,
} from "../src/protocol/replication.js";

const STATUS_INTERVAL_MS = 1000;
/** USER_HZ: what Linux reports /proc CPU times in (100 on every mainstream architecture). */
const CLOCK_TICKS_PER_SECOND = 100;

async function main(): Promise<void> {
  const [host, port, user, slot, endposText] = process.argv.slice(2);
  if (!host || !port || !user || !slot || !endposText)
    throw new Error("usage: discard-receiver HOST PORT USER SLOT ENDPOS");
  const endpos = parseLsn(endposText);
  const conn = await PgConnection.connect(
    resolveConnectionSettings({
      overrides: {
        host,
        port,
        user,
        ...(process.env.PGSSLMODE === undefined ? {} : { sslmode: process.env.PGSSLMODE }),
      },
      forced: { replication: "true" },
      env: {},
    }),
  );
  const identity = await identifySystem(conn);
  const info = await readReplicationSlot(conn, slot);
  if (info?.restartLsn === undefined) throw new Error(`slot ${slot} has no restart position`);
  const segmentSize = parseMemorySetting(await showSetting(conn, "wal_segment_size"));
  const start = segmentStartOf(info.restartLsn, segmentSize);
  // The walsender is this connection's backend process: its CPU time tells whether the server,
  // not this receiver, sets the pace (a walsender at one full core cannot send any faster).
  const walsenderBefore = await processCpuSeconds(conn.processId);
  const startedAt = process.hrtime.bigint();
  await startReplication(conn, { slot, start, timeline: info.restartTimeline ?? identity.timeline });

  let position: Lsn = start;
  let bytes = 0;
  let lastStatus = 0;
  const report = (replyRequested: boolean) => {
    conn.sendRaw(
      standbyStatusUpdateMessage({
        write: position,
        flush: position,
        apply: 0n,
        clientTime: pgTimestampNow(),
        replyRequested,
      }),
    );
    lastStatus = Date.now();
  };
  while (position < endpos) {
    const payloads = await conn.takeCopyData();
    if (payloads.length === 0)
      throw new Error(`stream ended at ${formatLsn(position)} before ${formatLsn(endpos)}`);
    let replyNow = false;
    for (const payload of payloads) {
      if (payload[0] === XLOG_DATA) {
        const message = parseXLogData(payload);
        if (message.start !== position) {
          throw new Error(
            `gap or overlap: got WAL at ${formatLsn(message.start)}, expected ${formatLsn(position)}`,
          );
        }
        position += BigInt(message.data.length);
        bytes += message.data.length;
      } else if (payload[0] === PRIMARY_KEEPALIVE) {
        replyNow ||= parsePrimaryKeepalive(payload).replyRequested;
      }
    }
    if (replyNow || Date.now() - lastStatus >= STATUS_INTERVAL_MS) report(false);
  }
  report(false);
  const walsenderBusy =
    walsenderBefore === undefined
      ? undefined
      : ((await processCpuSeconds(conn.processId)) ?? Number.NaN) - walsenderBefore;
  const wallSeconds = Number(process.hrtime.bigint() - startedAt) / 1e9;
  conn.sendCopyDone();
  await conn.finishCopy();
  await conn.close();
  const walsenderCores = walsenderBusy === undefined ? undefined : walsenderBusy / wallSeconds;
  process.stdout.write(
    `${JSON.stringify({ start: formatLsn(start), end: formatLsn(position), bytes, walsenderCores })}\n`,
  );
}

/** User + system CPU seconds of a local process (undefined when it is not readable, e.g. remote). */
async function processCpuSeconds(pid: number): Promise<number | undefined> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    process.stderr.write(`discard-receiver: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  },
);
