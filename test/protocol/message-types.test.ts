import assert from "node:assert/strict";
import { test } from "node:test";
import { Backend, backendMessageName, Frontend, typeByteText } from "../../src/protocol/message-types.js";

test("backend type bytes are the documented letters", () => {
  const letters: Record<keyof typeof Backend, string> = {
    Authentication: "R",
    BackendKeyData: "K",
    BindComplete: "2",
    CloseComplete: "3",
    CommandComplete: "C",
    CopyBothResponse: "W",
    CopyData: "d",
    CopyDone: "c",
    CopyInResponse: "G",
    CopyOutResponse: "H",
    DataRow: "D",
    EmptyQueryResponse: "I",
    ErrorResponse: "E",
    FunctionCallResponse: "V",
    NegotiateProtocolVersion: "v",
    NoData: "n",
    NoticeResponse: "N",
    NotificationResponse: "A",
    ParameterDescription: "t",
    ParameterStatus: "S",
    ParseComplete: "1",
    PortalSuspended: "s",
    ReadyForQuery: "Z",
    RowDescription: "T",
  };
  for (const [name, letter] of Object.entries(letters)) {
    assert.equal(Backend[name as keyof typeof Backend], letter.charCodeAt(0), name);
  }
  assert.equal(new Set(Object.values(Backend)).size, Object.keys(Backend).length, "no duplicates");
});

test("frontend type bytes", () => {
  assert.deepEqual(
    Object.fromEntries(Object.entries(Frontend).map(([k, v]) => [k, String.fromCharCode(v)])),
    { CopyData: "d", CopyDone: "c", CopyFail: "f", Password: "p", Query: "Q", Terminate: "X" },
  );
});

test("backendMessageName names known types and shows unknown bytes readably", () => {
  assert.equal(backendMessageName(0x45), "ErrorResponse ('E')");
  assert.equal(backendMessageName(Backend.CopyData), "CopyData ('d')");
  assert.equal(backendMessageName(0x21), "unknown message type '!'");
  assert.equal(backendMessageName(0x00), "unknown message type 0x00");
  assert.equal(backendMessageName(0xff), "unknown message type 0xff");
  assert.equal(typeByteText(0x20), "0x20");
});
