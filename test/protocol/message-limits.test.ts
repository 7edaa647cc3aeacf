/**
 * libpq's message size rules from the first byte (fe-connect.c, fe-protocol3.c): nothing the server
 * announces before authentication can make the framer set aside more than libpq's 30000 bytes.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import { ProtocolError } from "../../src/errors.js";
import { MessageFramer } from "../../src/protocol/framing.js";
import { ConnectionMessageLimits } from "../../src/protocol/message-limits.js";
import { Backend } from "../../src/protocol/message-types.js";
import { escapeControlCharacters, hasControlCharacters } from "../../src/protocol/untrusted-text.js";
import { propertySettings, propertyTimeoutMs } from "../support/property-runs.js";

const settings = propertySettings(1000);

function header(type: number, length: number): Buffer {
  const bytes = Buffer.alloc(5);
  bytes[0] = type;
  bytes.writeInt32BE(length, 1);
  return bytes;
}

const AUTHENTICATION_OK = Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 0]);

/** A framer with connection limits whose body allocations are recorded. */
function recordingFramer(): {
  framer: MessageFramer;
  allocations: number[];
  limits: ConnectionMessageLimits;
} {
  const allocations: number[] = [];
  const limits = new ConnectionMessageLimits();
  const framer = new MessageFramer(
    undefined,
    16, // assemble (allocate) every message that straddles chunks, so allocations show
    (size) => {
      allocations.push(size);
      return Buffer.alloc(size);
    },
    limits,
  );
  return { framer, allocations, limits };
}

/** Feeds `bytes` in pieces cut at `cuts`; returns the error the framer threw, if any. */
function feed(framer: MessageFramer, bytes: Buffer, cuts: number[]): unknown {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  let at = 0;
  try {
    for (const point of [...points, bytes.length]) {
      if (point > at) framer.push(bytes.subarray(at, point), () => undefined);
      at = Math.max(at, point);
    }
  } catch (error) {
    return error;
  }
  return undefined;
}

const lengths = fc.oneof(
  fc.integer({ min: 4, max: 40_000 }),
  fc.integer({ min: 4, max: 0x7fff_ffff }),
  fc.constantFrom(7, 8, 2000, 2001, 30_000, 30_001, 0x3fff_ffff, 0x7fff_ffff),
);
const types = fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0x52, 0x45, 0x76, 0x44, 0x64, 0x53));

test("property: before authentication, no announced message is allocated beyond libpq's limits", {
  timeout: propertyTimeoutMs(settings),
}, () => {
  fc.assert(
    fc.property(types, lengths, fc.array(fc.nat(64), { maxLength: 4 }), (type, length, cuts) => {
      const { framer, allocations } = recordingFramer();
      // The header and up to 40 bytes of body: enough to show whether the framer reserved it.
      const bytes = Buffer.concat([header(type, length), Buffer.alloc(Math.min(40, length - 4))]);
      const error = feed(framer, bytes, cuts);
      const limit = type === 0x52 || type === 0x76 ? 2000 : type === 0x45 ? 30_000 : 0;
      const allowed = length >= 8 && length <= limit;
      if (allowed) assert.equal(error, undefined);
      else {
        assert.ok(error instanceof ProtocolError, String(error));
        assert.match(
          error.message,
          /before authentication\)$|^expected authentication request from server, but received |\(less than 8\)$|\(limit 1073807360\)$/,
        );
      }
      for (const size of allocations) assert.ok(size <= 30_000 - 4, `allocated ${size} bytes before login`);
    }),
    settings,
  );
});

test("property: after AuthenticationOk, only libpq's long message types may pass 30000 bytes", {
  timeout: propertyTimeoutMs(settings),
}, () => {
  const long = new Set([0x54, 0x44, 0x64, 0x56, 0x45, 0x4e, 0x41]);
  fc.assert(
    fc.property(types, fc.integer({ min: 4, max: 80_000 }), (type, length) => {
      const { framer, limits } = recordingFramer();
      framer.push(AUTHENTICATION_OK, () => undefined);
      assert.equal(limits.afterAuthentication, true);
      const error = feed(framer, header(type, length), []);
      if (length <= 30_000 || long.has(type)) assert.equal(error, undefined);
      else {
        assert.ok(error instanceof ProtocolError);
        assert.match(error.message, /\(limit 30000 for this message type\)$/);
      }
    }),
    settings,
  );
});

test("the phase changes on the AuthenticationOk itself, even inside one chunk", () => {
  const { framer, limits } = recordingFramer();
  const parameter = Buffer.concat([header(Backend.ParameterStatus, 4 + 4), Buffer.from("a\0b\0")]);
  const seen: number[] = [];
  framer.push(Buffer.concat([AUTHENTICATION_OK, parameter]), (type) => seen.push(type));
  assert.deepEqual(seen, [Backend.Authentication, Backend.ParameterStatus]);
  assert.equal(limits.afterAuthentication, true);
  // An authentication request other than Ok keeps the tight limits.
  const other = recordingFramer();
  other.framer.push(Buffer.from([0x52, 0, 0, 0, 8, 0, 0, 0, 3]), () => undefined);
  assert.equal(other.limits.afterAuthentication, false);
});

test("property: escaped server text holds no control characters and printable text is unchanged", () => {
  fc.assert(
    fc.property(
      fc.string({ unit: "binary", maxLength: 40 }),
      fc.string({ maxLength: 40 }),
      (any, printable) => {
        assert.equal(hasControlCharacters(escapeControlCharacters(any)), false);
        assert.equal(escapeControlCharacters(printable), printable);
      },
    ),
    settings,
  );
});
