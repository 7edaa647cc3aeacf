/**
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) in pure TypeScript, slicing-by-8: eight
 * lookup tables let each step consume 8 bytes with independent lookups. This is the fallback when
 * the native implementation is not installed for the platform; both compute the same function.
 *
 * `state` is the running, non-finalised CRC (PostgreSQL's INIT_CRC32C/COMP_CRC32C/FIN_CRC32C):
 * start from CRC32C_INIT, feed pieces in order, finish with finishCrc32c.
 */
export const CRC32C_INIT = 0xffffffff;

const TABLES: Uint32Array[] = buildTables();

function buildTables(): Uint32Array[] {
  const tables = Array.from({ length: 8 }, () => new Uint32Array(256));
  const base = tables[0]!;
  for (let n = 0; n < 256; n++) {
    let crc = n;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0x82f63b78 : crc >>> 1;
    base[n] = crc >>> 0;
  }
  for (let n = 0; n < 256; n++) {
    let crc = base[n]!;
    for (let k = 1; k < 8; k++) {
      crc = (base[crc & 0xff]! ^ (crc >>> 8)) >>> 0;
      tables[k]![n] = crc;
    }
  }
  return tables;
}

/** Continues the running CRC `state` over bytes[start, end). */
export function updateCrc32cTable(state: number, bytes: Uint8Array, start = 0, end = bytes.length): number {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = TABLES as [
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
    Uint32Array,
  ];
  let crc = state | 0;
  let i = start;
  for (const stop = end - 7; i < stop; i += 8) {
    const low = crc ^ (bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24));
    crc =
      t7[low & 0xff]! ^
      t6[(low >>> 8) & 0xff]! ^
      t5[(low >>> 16) & 0xff]! ^
      t4[low >>> 24]! ^
      t3[bytes[i + 4]!]! ^
      t2[bytes[i + 5]!]! ^
      t1[bytes[i + 6]!]! ^
      t0[bytes[i + 7]!]!;
  }
  for (; i < end; i++) crc = t0[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return crc >>> 0;
}
