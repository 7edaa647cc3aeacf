import assert from "node:assert/strict";
import { test } from "node:test";
import { UsageError } from "../../src/errors.js";
import {
  copyDataMessage,
  copyDoneMessage,
  copyFailMessage,
  PROTOCOL_VERSION_3_0,
  passwordMessage,
  queryMessage,
  SSL_REQUEST_CODE,
  saslInitialResponse,
  saslResponse,
  sslRequest,
  startupMessage,
  terminateMessage,
} from "../../src/protocol/frontend.js";
import { hex } from "../support/protocol-asserts.js";

test("protocol constants", () => {
  assert.equal(PROTOCOL_VERSION_3_0, 3 << 16);
  assert.equal(SSL_REQUEST_CODE, (1234 << 16) | 5679);
});

test("startupMessage: length, version 3.0, key/value pairs in insertion order, final NUL", () => {
  const message = startupMessage({ user: "u", replication: "true" });
  const expected = hex(`
    00000021 00030000
    75736572 00 75 00
    7265706c69636174696f6e 00 74727565 00
    00`);
  assert.deepEqual(message, expected);
  assert.equal(message.readInt32BE(0), message.length);
});

test("startupMessage with no parameters is 9 bytes", () => {
  assert.deepEqual(startupMessage({}), hex("00000009 00030000 00"));
});

test("startupMessage counts UTF-8 bytes and allows empty values", () => {
  const message = startupMessage({ application_name: "wal-é", options: "" });
  assert.equal(message.readInt32BE(0), message.length);
  assert.equal(message.length, 8 + "application_name".length + 1 + 6 + 1 + "options".length + 1 + 1 + 1);
  assert.equal(message.subarray(8).toString("utf8"), "application_name\0wal-é\0options\0\0\0");
});

test("startupMessage rejects NUL in names or values and empty names", () => {
  assert.throws(() => startupMessage({ "us\0er": "x" }), UsageError);
  assert.throws(() => startupMessage({ user: "x\0y" }), UsageError);
  assert.throws(() => startupMessage({ "": "x" }), UsageError);
});

test("sslRequest is 8 bytes with code 80877103", () => {
  assert.deepEqual(sslRequest(), hex("00000008 04d2162f"));
});

test("queryMessage: 'Q', length, text, NUL", () => {
  assert.deepEqual(queryMessage("IDENTIFY_SYSTEM"), hex("51 00000014 4944454e544946595f53595354454d 00"));
  assert.deepEqual(queryMessage(""), hex("51 00000005 00"));
  // Length counts bytes, not characters.
  assert.deepEqual(queryMessage("é"), hex("51 00000007 c3a9 00"));
  assert.throws(() => queryMessage("SELECT 1\0; DROP"), UsageError);
});

test("passwordMessage: 'p', length, password, NUL", () => {
  assert.deepEqual(passwordMessage("secret"), hex("70 0000000b 736563726574 00"));
  assert.throws(() => passwordMessage("a\0b"), UsageError);
});

test("saslInitialResponse: mechanism, Int32 data length, data", () => {
  const data = Buffer.from("n,,n=,r=abc");
  assert.deepEqual(
    saslInitialResponse("SCRAM-SHA-256", data),
    hex("70 00000021 534352414d2d5348412d323536 00 0000000b 6e2c2c6e3d2c723d616263"),
  );
  assert.deepEqual(saslInitialResponse("X", Buffer.alloc(0)), hex("70 0000000a 58 00 00000000"));
  assert.throws(() => saslInitialResponse("SCRAM\0", data), UsageError);
});

test("saslResponse: 'p', length, raw data", () => {
  assert.deepEqual(saslResponse(Buffer.from("c=biws")), hex("70 0000000a 633d62697773"));
  assert.deepEqual(saslResponse(Buffer.alloc(0)), hex("70 00000004"));
});

test("copyDataMessage copies any Uint8Array payload", () => {
  const payload = new Uint8Array([0x72, 0, 1, 2]);
  const message = copyDataMessage(payload);
  assert.deepEqual(message, hex("64 00000008 72000102"));
  payload[0] = 0;
  assert.equal(message[5], 0x72, "the message owns its bytes");
  assert.deepEqual(copyDataMessage(new Uint8Array(0)), hex("64 00000004"));
});

test("copyDone, copyFail and terminate", () => {
  assert.deepEqual(copyDoneMessage(), hex("63 00000004"));
  assert.deepEqual(copyFailMessage("stop"), hex("66 00000009 73746f70 00"));
  assert.deepEqual(terminateMessage(), hex("58 00000004"));
});

test("builders return fresh buffers each call", () => {
  const a = copyDoneMessage();
  const b = copyDoneMessage();
  a[0] = 0;
  assert.equal(b[0], 0x63);
});
