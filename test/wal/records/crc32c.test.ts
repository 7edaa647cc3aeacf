/** CRC-32C: the table and the native implementation agree with a bitwise reference, in any pieces. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { CRC32C_INIT, crc32c, finishCrc32c, updateCrc32c } from "../../../src/wal/records/crc32c.js";
import { updateCrc32cTable } from "../../../src/wal/records/crc32c-table.js";
import { propertySettings } from "../../support/property-runs.js";
import { referenceCrc32c } from "./wal-builder.js";

test("the check value of CRC-32C", () => {
  assert.equal(crc32c(Buffer.from("123456789")), 0xe3069283);
  assert.equal(finishCrc32c(updateCrc32cTable(CRC32C_INIT, Buffer.from("123456789"))), 0xe3069283);
});

test("table, native-or-table and the bitwise reference agree on any bytes split anywhere", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 3000 }), fc.nat(), (bytes, cutSeed) => {
      const expected = (referenceCrc32c(bytes) ^ 0xffffffff) >>> 0;
      const cut = bytes.length === 0 ? 0 : cutSeed % (bytes.length + 1);
      assert.equal(finishCrc32c(updateCrc32cTable(CRC32C_INIT, bytes)), expected);
      assert.equal(
        finishCrc32c(updateCrc32c(updateCrc32c(CRC32C_INIT, bytes, 0, cut), bytes, cut, bytes.length)),
        expected,
      );
    }),
    propertySettings(300),
  );
});
