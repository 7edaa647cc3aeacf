/**
 * --create-slot and --drop-slot: act on the slot over the already open replication connection,
 * then the program exits (pg_receivewal never streams in the same run).
 */
import { createPhysicalSlot, dropSlot } from "../connection/commands.js";
import type { PgConnection } from "../connection/connection.js";
import type { ReceiverLogger } from "../receiver/logger.js";

export type SlotAction =
  | { kind: "create"; slot: string; ifNotExists: boolean }
  | { kind: "drop"; slot: string };

export async function runSlotAction(
  conn: PgConnection,
  action: SlotAction,
  logger: ReceiverLogger,
): Promise<void> {
  if (action.kind === "drop") {
    logger.info({ slot: action.slot }, `dropping replication slot "${action.slot}"`);
    await dropSlot(conn, action.slot);
    return;
  }
  logger.info({ slot: action.slot }, `creating replication slot "${action.slot}"`);
  const created = await createPhysicalSlot(conn, action.slot, { ifNotExists: action.ifNotExists });
  if (!created) logger.info({ slot: action.slot }, `replication slot "${action.slot}" already exists`);
}
