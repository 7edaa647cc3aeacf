/**
 * CRC-32C for WAL records. The native implementation (@node-rs/crc32, SSE4.2/ARMv8 CRC
 * instructions) is used for longer pieces; short pieces go to the slicing-by-8 table, because the
 * cost of crossing into native code outweighs the work for a few dozen bytes, and most WAL records
 * are short. When the native package is not installed for the platform, the table does everything.
 */
import { createRequire } from "node:module";
import { CRC32C_INIT, updateCrc32cTable } from "./crc32c-table.js";

export { CRC32C_INIT };

type NativeCrc32c = (input: Uint8Array, initialState?: number) => number;

/** Pieces shorter than this are cheaper in the table than through a native call. */
const NATIVE_MIN_LENGTH = 128;

function loadNative(): NativeCrc32c | undefined {
  if (process.env.PGWAL_CRC32C === "table") return undefined;
  try {
    const module = createRequire(import.meta.url)("@node-rs/crc32") as { crc32c?: NativeCrc32c };
    const crc32c = module.crc32c;
    // A wrong answer on the check value would make every record look corrupt: keep the table then.
    if (typeof crc32c !== "function" || crc32c(Buffer.from("123456789")) !== 0xe3069283) return undefined;
    return crc32c;
  } catch {
    return undefined;
  }
}

const native = loadNative();

/** Which implementation serves the longer pieces ("native" or "table"). */
export const crc32cImplementation: "native" | "table" = native === undefined ? "table" : "native";

/** Continues the running (not finalised) CRC `state` over bytes[start, end). */
export function updateCrc32c(state: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  if (native === undefined || end - start < NATIVE_MIN_LENGTH)
    return updateCrc32cTable(state, bytes, start, end);
  // The native function takes and returns finalised values: convert at the boundary.
  const piece = new Uint8Array(bytes.buffer, bytes.byteOffset + start, end - start);
  return (native(piece, (state ^ 0xffffffff) >>> 0) ^ 0xffffffff) >>> 0;
}

/** The final CRC value (FIN_CRC32C). */
export function finishCrc32c(state: number): number {
  return (state ^ 0xffffffff) >>> 0;
}

/** CRC-32C of a whole buffer. */
export function crc32c(bytes: Uint8Array): number {
  return finishCrc32c(updateCrc32c(CRC32C_INIT, bytes));
}
