/**
 * Property tests: random and mutated input, in random chunkings, to the framer and every parser.
 * The contract under test: a value or a ProtocolError, never another error, never a hang; and
 * builders and parsers agree on every valid message. Runs per property: PGWAL_PROPERTY_RUNS.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import type { ServerErrorFields } from "../../src/errors.js";
import {
  type AuthenticationRequest,
  type FieldDescription,
  parseAuthentication,
  parseBackendKeyData,
  parseCommandComplete,
  parseCopyResponse,
  parseDataRow,
  parseErrorFields,
  parseNegotiateProtocolVersion,
  parseParameterStatus,
  parseReadyForQuery,
  parseRowDescription,
} from "../../src/protocol/backend.js";
import { MessageFramer } from "../../src/protocol/framing.js";
import {
  copyDataMessage,
  passwordMessage,
  queryMessage,
  startupMessage,
} from "../../src/protocol/frontend.js";
import {
  dateFromPgTimestamp,
  parsePrimaryKeepalive,
  parseStandbyStatusUpdate,
  parseTimelineHistory,
  parseXLogData,
  pgTimestampFromDate,
  type StandbyStatus,
  standbyStatusUpdateMessage,
  type TimelineHistoryEntry,
} from "../../src/protocol/replication.js";
import { escapeControlCharacters } from "../../src/protocol/untrusted-text.js";
import * as build from "../support/backend-builders.js";
import { propertySettings, propertyTimeoutMs } from "../support/property-runs.js";
import { valueOrProtocolError } from "../support/protocol-asserts.js";

const settings = propertySettings();
const timeout = propertyTimeoutMs(settings);
const body = (message: Buffer) => message.subarray(5);

// --- Arbitraries ---

/** fc.record with ordinary objects: assert.deepEqual compares prototypes. */
function plainRecord<T>(model: { [K in keyof T]: fc.Arbitrary<T[K]> }): fc.Arbitrary<T> {
  return fc.record(model, { noNullPrototype: true });
}

const u64 = fc.bigInt({ min: 0n, max: 0xffff_ffff_ffff_ffffn });
const i64 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });
const i32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const u32 = fc.integer({ min: 0, max: 2 ** 32 - 1 });
const i16 = fc.integer({ min: -(2 ** 15), max: 2 ** 15 - 1 });
// size "max": without it fast-check keeps arrays to about 10 elements, hiding large-message paths.
const bytes = (maxLength = 64) => fc.uint8Array({ maxLength, size: "max" }).map((a) => Buffer.from(a));
/** Any Unicode text without NUL (which C strings cannot hold). */
const cText = (maxLength = 16) =>
  fc
    .oneof(
      fc.string({ unit: "binary", maxLength }),
      fc.string({ maxLength }), // printable ASCII
    )
    .map((s) => s.replaceAll("\0", ""));

/** Splits `data` at random positions (including empty chunks). */
function chunked(data: Buffer, cuts: readonly number[]): Buffer[] {
  const positions = cuts.map((c) => c % (data.length + 1)).sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let from = 0;
  for (const at of positions) {
    chunks.push(data.subarray(from, at));
    from = at;
  }
  chunks.push(data.subarray(from));
  return chunks;
}
const cuts = fc.array(fc.nat(), { maxLength: 24, size: "max" });

type Edit = readonly ["set" | "insert" | "delete" | "truncate", number, number];
const edits = fc.array(
  fc.tuple(
    fc.constantFrom("set", "insert", "delete", "truncate"),
    fc.nat(),
    fc.integer({ min: 0, max: 255 }),
  ),
  { minLength: 1, maxLength: 4 },
);

/** Applies byte edits: the kinds of damage a buggy or hostile peer could do. */
function mutate(input: Buffer, changes: readonly Edit[]): Buffer {
  let data = Buffer.from(input);
  for (const [kind, position, value] of changes) {
    const at = data.length === 0 ? 0 : position % (data.length + (kind === "insert" ? 1 : 0));
    if (kind === "set" && data.length > 0) data[at] = value;
    else if (kind === "insert")
      data = Buffer.concat([data.subarray(0, at), Buffer.from([value]), data.subarray(at)]);
    else if (kind === "delete") data = Buffer.concat([data.subarray(0, at), data.subarray(at + 1)]);
    else if (kind === "truncate") data = data.subarray(0, at);
  }
  return data;
}

// --- Framer ---

interface Frame {
  type: number;
  body: Buffer;
}
const frame = plainRecord({
  type: fc.integer({ min: 0, max: 255 }),
  body: fc.oneof({ weight: 9, arbitrary: bytes(64) }, { weight: 1, arbitrary: bytes(5000) }),
});

function encode(frames: readonly Frame[]): Buffer {
  return Buffer.concat(frames.map((f) => build.backendMessage(f.type, f.body)));
}

interface FramerOutcome {
  frames: Frame[];
  failed: boolean;
  pending: number;
}

/** Feeds chunks; a ProtocolError ends the run, any other error fails the property. */
function runFramer(chunks: readonly Buffer[], maxLength?: number): FramerOutcome {
  const framer = new MessageFramer(maxLength);
  const frames: Frame[] = [];
  for (const chunk of chunks) {
    const ok = valueOrProtocolError(() => {
      framer.push(chunk, (type, b) => frames.push({ type, body: Buffer.from(b) }));
      return true;
    });
    if (ok === undefined) return { frames, failed: true, pending: -1 };
  }
  return { frames, failed: false, pending: framer.pendingBytes };
}

test("framer: any messages in any chunking come out exactly as sent", { timeout }, () => {
  fc.assert(
    fc.property(fc.array(frame, { maxLength: 12, size: "max" }), cuts, (frames, positions) => {
      const outcome = runFramer(chunked(encode(frames), positions));
      assert.deepEqual(outcome, { frames, failed: false, pending: 0 });
    }),
    settings,
  );
});

test("framer: random or damaged streams give the same messages/error in any chunking", { timeout }, () => {
  const stream = fc.oneof(
    bytes(300),
    fc.tuple(fc.array(frame, { maxLength: 6 }), edits).map(([frames, e]) => mutate(encode(frames), e)),
  );
  fc.assert(
    fc.property(stream, cuts, fc.constantFrom(undefined, 64, 5000), (data, positions, maxLength) => {
      const whole = runFramer([data], maxLength);
      const pieces = runFramer(chunked(data, positions), maxLength);
      assert.deepEqual(pieces, whole);
      // Bytes not delivered are exactly what is pending (when nothing failed).
      if (!whole.failed) {
        const delivered = whole.frames.reduce((n, f) => n + 5 + f.body.length, 0);
        assert.equal(whole.pending, data.length - delivered);
      }
    }),
    settings,
  );
});

test("framer: frontend builders produce frames whose length field matches", { timeout }, () => {
  fc.assert(
    fc.property(cText(40), bytes(100), (text, payload) => {
      const out = runFramer([queryMessage(text), passwordMessage(text), copyDataMessage(payload)]);
      const cstring = Buffer.concat([Buffer.from(text, "utf8"), Buffer.from([0])]);
      assert.deepEqual(out.frames, [
        { type: 0x51, body: cstring },
        { type: 0x70, body: cstring },
        { type: 0x64, body: payload },
      ]);
      assert.equal(out.pending, 0);
    }),
    settings,
  );
});

test("startupMessage: length field and pairs match the parameters", { timeout }, () => {
  fc.assert(
    fc.property(
      fc.dictionary(
        cText(10).filter((k) => k !== ""),
        cText(20),
        { maxKeys: 6 },
      ),
      (params) => {
        const message = startupMessage(params);
        assert.equal(message.readInt32BE(0), message.length);
        const parts = message.subarray(8).toString("utf8").split("\0");
        assert.deepEqual(parts, [...Object.entries(params).flat(), "", ""]);
      },
    ),
    settings,
  );
});

// --- Parsers: round trips and garbage ---

interface Case<T> {
  body: Buffer;
  expected: T;
}

const unsupportedNames: Record<number, string> = {
  2: "Kerberos V5",
  6: "SCM credentials",
  7: "GSSAPI",
  8: "GSSAPI",
  9: "SSPI",
};
const authentication: fc.Arbitrary<Case<AuthenticationRequest>> = fc.oneof(
  fc.constant({ body: body(build.authenticationOk()), expected: { kind: "ok" } as const }),
  fc.constant({
    body: body(build.authenticationCleartextPassword()),
    expected: { kind: "cleartext-password" } as const,
  }),
  bytes(4)
    .filter((s) => s.length === 4)
    .map((salt) => ({
      body: body(build.authenticationMd5Password(salt)),
      expected: { kind: "md5-password", salt } as const,
    })),
  fc
    .array(
      cText(20).filter((m) => m !== ""),
      { maxLength: 4 },
    )
    .map((mechanisms) => ({
      body: body(build.authenticationSasl(mechanisms)),
      expected: { kind: "sasl", mechanisms } as const,
    })),
  bytes().map((data) => ({
    body: body(build.authenticationSaslContinue(data)),
    expected: { kind: "sasl-continue", data } as const,
  })),
  bytes().map((data) => ({
    body: body(build.authenticationSaslFinal(data)),
    expected: { kind: "sasl-final", data } as const,
  })),
  fc
    .tuple(
      i32.filter((c) => ![0, 3, 5, 10, 11, 12].includes(c)),
      bytes(8),
    )
    .map(([code, extra]) => ({
      body: body(build.authenticationRequest(code, extra)),
      expected: {
        kind: "unsupported",
        code,
        method: unsupportedNames[code] ?? `unknown (code ${code})`,
      } as const,
    })),
);

const errorFields: fc.Arbitrary<Case<ServerErrorFields>> = fc
  .record(
    {
      severity: cText(),
      code: cText(5),
      message: cText(40),
      detail: cText(),
      hint: cText(),
      position: cText(),
      internalPosition: cText(),
      internalQuery: cText(),
      where: cText(),
      schema: cText(),
      table: cText(),
      column: cText(),
      dataType: cText(),
      constraint: cText(),
      file: cText(),
      line: cText(),
      routine: cText(),
    },
    { requiredKeys: ["severity", "code", "message"], noNullPrototype: true },
  )
  .chain((fields) =>
    plainRecord({
      localized: fc.option(cText()),
      unknown: fc.array(fc.tuple(fc.constantFrom("Y", "Z", "a", "1"), cText())),
    }).map(({ localized, unknown }) => ({
      body: build.errorFieldsBody({ ...fields, localizedSeverity: localized ?? undefined, raw: unknown }),
      // Control characters in server text are escaped by the parser.
      expected: Object.fromEntries(
        Object.entries(fields).map(([k, v]) => [k, escapeControlCharacters(v as string)]),
      ) as unknown as ServerErrorFields,
    })),
  );

const column: fc.Arbitrary<FieldDescription> = plainRecord({
  name: cText(),
  tableOid: u32,
  columnNumber: i16,
  typeOid: u32,
  typeSize: i16,
  typeModifier: i32,
  format: i16,
});

const xlog = plainRecord({ start: u64, end: u64, serverTime: i64, data: bytes(200) }).filter(
  (x) => x.start + BigInt(x.data.length) <= 0xffff_ffff_ffff_ffffn + 1n,
);
const standbyStatus: fc.Arbitrary<StandbyStatus> = plainRecord({
  write: u64,
  flush: u64,
  apply: u64,
  clientTime: i64,
  replyRequested: fc.boolean(),
});

interface ParserUnderTest {
  name: string;
  parse: (b: Buffer) => unknown;
  valid: fc.Arbitrary<Case<unknown>>;
}

const parsers: ParserUnderTest[] = [
  { name: "Authentication", parse: parseAuthentication, valid: authentication },
  { name: "ErrorResponse", parse: parseErrorFields, valid: errorFields },
  {
    name: "ParameterStatus",
    parse: parseParameterStatus,
    valid: fc.tuple(cText(), cText()).map(([name, value]) => ({
      body: body(build.parameterStatus(name, value)),
      expected: { name: escapeControlCharacters(name), value: escapeControlCharacters(value) },
    })),
  },
  {
    name: "BackendKeyData",
    parse: parseBackendKeyData,
    valid: fc.tuple(i32, fc.uint8Array({ minLength: 1, maxLength: 256 })).map(([processId, key]) => ({
      body: body(build.backendKeyData(processId, key)),
      expected: { processId, secretKey: Buffer.from(key) },
    })),
  },
  {
    name: "ReadyForQuery",
    parse: parseReadyForQuery,
    valid: fc
      .constantFrom("I" as const, "T" as const, "E" as const)
      .map((s) => ({ body: body(build.readyForQuery(s)), expected: s })),
  },
  {
    name: "RowDescription",
    parse: parseRowDescription,
    valid: fc
      .array(column, { maxLength: 6 })
      .map((columns) => ({ body: body(build.rowDescription(columns)), expected: columns })),
  },
  {
    name: "DataRow",
    parse: parseDataRow,
    valid: fc
      .array(fc.option(bytes(40)), { maxLength: 8 })
      .map((values) => ({ body: body(build.dataRow(values)), expected: values })),
  },
  {
    name: "CommandComplete",
    parse: parseCommandComplete,
    valid: cText(30).map((tag) => ({ body: body(build.commandComplete(tag)), expected: tag })),
  },
  {
    name: "CopyResponse",
    parse: parseCopyResponse,
    valid: fc
      .tuple(fc.constantFrom(0, 1), fc.array(fc.constantFrom(0, 1), { maxLength: 8 }))
      .map(([overallFormat, columnFormats]) => ({
        body: body(build.copyBothResponse(overallFormat, columnFormats)),
        expected: { overallFormat, columnFormats },
      })),
  },
  {
    name: "NegotiateProtocolVersion",
    parse: parseNegotiateProtocolVersion,
    valid: fc
      .tuple(i32, fc.array(cText(), { maxLength: 5 }))
      .map(([newestMinorVersion, unrecognizedOptions]) => ({
        body: body(build.negotiateProtocolVersion(newestMinorVersion, unrecognizedOptions)),
        expected: { newestMinorVersion, unrecognizedOptions },
      })),
  },
  {
    name: "XLogData",
    parse: parseXLogData,
    valid: xlog.map((x) => ({
      body: build.xlogDataPayload(x.start, x.end, x.serverTime, x.data),
      expected: x,
    })),
  },
  {
    name: "PrimaryKeepalive",
    parse: parsePrimaryKeepalive,
    valid: plainRecord({ end: u64, serverTime: i64, replyRequested: fc.boolean() }).map((k) => ({
      body: build.keepalivePayload(k.end, k.serverTime, k.replyRequested),
      expected: k,
    })),
  },
  {
    name: "StandbyStatusUpdate",
    parse: parseStandbyStatusUpdate,
    valid: standbyStatus.map((s) => ({ body: standbyStatusUpdateMessage(s).subarray(5), expected: s })),
  },
];

for (const { name, parse, valid } of parsers) {
  test(`${name}: every valid body parses to what was built`, { timeout }, () => {
    fc.assert(
      fc.property(valid, ({ body: b, expected }) => {
        assert.deepEqual(parse(b), expected);
      }),
      settings,
    );
  });

  test(`${name}: random and damaged bodies give a value or a ProtocolError`, { timeout }, () => {
    const input = fc.oneof(
      bytes(120),
      fc.tuple(valid, edits).map(([c, e]) => mutate(c.body, e)),
    );
    fc.assert(
      fc.property(input, (b) => {
        valueOrProtocolError(() => parse(b));
      }),
      settings,
    );
  });
}

// --- Timestamps and timeline history ---

test("timestamps: Unix ms → PostgreSQL µs → Date is the identity over Date's range", { timeout }, () => {
  fc.assert(
    fc.property(fc.integer({ min: -8.64e15, max: 8.64e15 }), (ms) => {
      const ts = pgTimestampFromDate(ms);
      assert.equal(ts, (BigInt(ms) - 946684800000n) * 1000n);
      assert.equal(dateFromPgTimestamp(ts).getTime(), ms);
    }),
    settings,
  );
});

test("timestamps: any int64 gives a Date or a ProtocolError", { timeout }, () => {
  fc.assert(
    fc.property(i64, (ts) => {
      const date = valueOrProtocolError(() => dateFromPgTimestamp(ts));
      if (date !== undefined) assert.ok(Number.isFinite(date.getTime()));
    }),
    settings,
  );
});

const reason = fc.string({ unit: "binary", maxLength: 30 }).map((s) => s.replace(/[\n\r]/g, " ").trim());
const history: fc.Arbitrary<TimelineHistoryEntry[]> = fc
  .uniqueArray(fc.integer({ min: 1, max: 2 ** 32 - 1 }), { maxLength: 8 })
  .chain((timelines) =>
    fc.tuple(
      ...[...timelines]
        .sort((a, b) => a - b)
        .map((timeline) => plainRecord({ timeline: fc.constant(timeline), switchpoint: u64, reason })),
    ),
  );

function formatHistory(entries: readonly TimelineHistoryEntry[]): string {
  const hex = (n: bigint) => n.toString(16).toUpperCase();
  return entries
    .map(
      (e) =>
        `${e.timeline}\t${hex(e.switchpoint >> 32n)}/${hex(e.switchpoint & 0xffff_ffffn)}\t${e.reason}\n`,
    )
    .join("");
}

test("timeline history: what the server writes parses back", { timeout }, () => {
  fc.assert(
    fc.property(history, fc.boolean(), (entries, comment) => {
      const text = (comment ? "# written by a test\n\n" : "") + formatHistory(entries);
      assert.deepEqual(parseTimelineHistory(text), entries);
    }),
    settings,
  );
});

test("timeline history: random and damaged text gives entries or a ProtocolError", { timeout }, () => {
  const text = fc.oneof(
    fc.string({ unit: "binary", maxLength: 100 }),
    fc
      .tuple(history, edits)
      .map(([entries, e]) => mutate(Buffer.from(formatHistory(entries)), e).toString("utf8")),
  );
  fc.assert(
    fc.property(text, (t) => {
      const entries = valueOrProtocolError(() => parseTimelineHistory(t));
      if (entries !== undefined) {
        for (let i = 1; i < entries.length; i++) assert.ok(entries[i]!.timeline > entries[i - 1]!.timeline);
      }
    }),
    settings,
  );
});
