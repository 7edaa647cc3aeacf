/** WAL arriving in chunks of any size reads the same records as whole pages. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { WalChunkFeeder } from "../../../src/wal/records/chunk-feeder.js";
import { WalRecordReader } from "../../../src/wal/records/record-reader.js";
import { propertySettings } from "../../support/property-runs.js";
import { mainDataBody, PAGE, WalBuilder } from "./wal-builder.js";

const SEGMENT = 1 << 20;

function stream(): { bytes: Buffer; builder: WalBuilder } {
  const builder = new WalBuilder({ segmentSize: SEGMENT });
  for (let i = 0; i < 50; i++) {
    builder.append({ rmid: 10, info: 0, body: mainDataBody(Buffer.alloc((i * 7919) % 50_000, i)) });
  }
  return { bytes: builder.finish(), builder };
}

test("any chunking of the stream reads every record, with the chain unbroken", () => {
  const { bytes, builder } = stream();
  const expected = builder.records.map((r) => r.lsn);
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: 3 * PAGE }), { minLength: 1, maxLength: 40 }), (sizes) => {
      const lsns: bigint[] = [];
      const feeder = new WalChunkFeeder(
        new WalRecordReader({ segmentSize: SEGMENT, onRecord: (r) => lsns.push(r.lsn) }),
      );
      for (let at = 0, i = 0; at < bytes.length; i++) {
        const size = Math.min(sizes[i % sizes.length]!, bytes.length - at);
        // A copy per chunk that is then overwritten: the reader must not keep references into it.
        const chunk = Buffer.from(bytes.subarray(at, at + size));
        const stop = feeder.push(chunk, builder.startLsn + BigInt(at));
        chunk.fill(0xee);
        if (stop !== undefined) assert.equal(stop.kind, "end-of-wal");
        at += size;
      }
      assert.deepEqual(lsns, expected);
    }),
    propertySettings(100),
  );
});

test("a fresh start in the middle of a page skips to the next page and its first record", () => {
  const { bytes, builder } = stream();
  const lsns: bigint[] = [];
  const feeder = new WalChunkFeeder(
    new WalRecordReader({ segmentSize: SEGMENT, onRecord: (r) => lsns.push(r.lsn) }),
  );
  const start = 5 * PAGE + 1000;
  feeder.push(bytes.subarray(start), builder.startLsn + BigInt(start));
  const firstPage = builder.startLsn + BigInt(6 * PAGE);
  assert.ok(lsns.length > 0);
  assert.ok(lsns[0]! >= firstPage);
  assert.deepEqual(
    lsns,
    builder.records.filter((r) => r.lsn >= lsns[0]!).map((r) => r.lsn),
  );
});
