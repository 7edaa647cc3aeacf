import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync } from "node:crypto";
import { test } from "node:test";
import {
  type ChannelBinding,
  checkChannelBindingRequirement,
  chooseScramMechanism,
  ScramSha256Client,
} from "../../../src/connection/auth/scram.js";
import { AuthenticationError } from "../../../src/errors.js";

const text = (buffer: Buffer) => buffer.toString("utf8");
const bytes = (value: string) => Buffer.from(value, "utf8");

test("RFC 7677 SCRAM-SHA-256 test vector", async () => {
  const client = new ScramSha256Client("pencil", { username: "user", nonce: "rOprNGfwEbeRWgbNEkqO" });
  assert.equal(client.mechanism, "SCRAM-SHA-256");
  assert.equal(text(client.clientFirstMessage()), "n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
  const clientFinal = await client.handleServerFirst(
    bytes("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
  );
  assert.equal(
    text(clientFinal),
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  );
  client.verifyServerFinal(bytes("v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="));
  assert.equal(client.channelBound, false);
});

test("RFC 7677 vector: a server signature that differs in one bit is refused", async () => {
  const client = new ScramSha256Client("pencil", { username: "user", nonce: "rOprNGfwEbeRWgbNEkqO" });
  client.clientFirstMessage();
  await client.handleServerFirst(
    bytes("r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"),
  );
  const signature = Buffer.from("6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=", "base64");
  signature[31]! ^= 1;
  assert.throws(
    () => client.verifyServerFinal(bytes(`v=${signature.toString("base64")}`)),
    new AuthenticationError("incorrect server signature"),
  );
});

/**
 * A minimal SCRAM server written independently of the client: it checks the client proof the way
 * PostgreSQL's backend does and answers with its own signature.
 */
function fakeServer(password: string, channelBinding?: Buffer) {
  const salt = Buffer.from("0123456789abcdef");
  const iterations = 4096;
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const hmac = (key: Buffer, data: string) => createHmac("sha256", key).update(data).digest();
  const storedKey = createHash("sha256").update(hmac(salted, "Client Key")).digest();
  const serverKey = hmac(salted, "Server Key");
  let clientFirstBare = "";
  let serverFirst = "";
  let gs2 = "";
  return {
    first(clientFirst: Buffer): Buffer {
      const message = text(clientFirst);
      const match = /^((?:p=tls-server-end-point|y|n),,)(n=,r=(.+))$/.exec(message);
      assert.ok(match, `client-first ${message}`);
      gs2 = match[1]!;
      clientFirstBare = match[2]!;
      serverFirst = `r=${match[3]}SERVERPART,s=${salt.toString("base64")},i=${iterations}`;
      return bytes(serverFirst);
    },
    final(clientFinal: Buffer): Buffer {
      const message = text(clientFinal);
      const match = /^(c=([^,]*),r=([^,]*)),p=(.*)$/.exec(message);
      assert.ok(match, `client-final ${message}`);
      const expectedCbind = Buffer.concat([bytes(gs2), channelBinding ?? Buffer.alloc(0)]);
      assert.equal(match[2], expectedCbind.toString("base64"), "channel binding attribute");
      const authMessage = `${clientFirstBare},${serverFirst},${match[1]}`;
      const signature = hmac(storedKey, authMessage);
      const proof = Buffer.from(match[4]!, "base64");
      const clientKey = Buffer.from(proof.map((byte, i) => byte ^ signature[i]!));
      const ok = createHash("sha256").update(clientKey).digest().equals(storedKey);
      return bytes(ok ? `v=${hmac(serverKey, authMessage).toString("base64")}` : "e=invalid-proof");
    },
  };
}

async function exchange(client: ScramSha256Client, server: ReturnType<typeof fakeServer>): Promise<void> {
  const serverFirst = server.first(client.clientFirstMessage());
  client.verifyServerFinal(server.final(await client.handleServerFirst(serverFirst)));
}

test("PostgreSQL-style exchange: empty user name, random 24-character nonce, server accepts the proof", async () => {
  const client = new ScramSha256Client("pw-scram-3");
  const first = text(client.clientFirstMessage());
  assert.match(first, /^n,,n=,r=[A-Za-z0-9+/]{24}$/);
  const server = fakeServer("pw-scram-3");
  client.verifyServerFinal(server.final(await client.handleServerFirst(server.first(bytes(first)))));
});

test("wrong password: the server's error is reported", async () => {
  const client = new ScramSha256Client("wrong");
  await assert.rejects(
    () => exchange(client, fakeServer("right")),
    new AuthenticationError("error received from server in SCRAM exchange: invalid-proof"),
  );
});

test("two nonces differ", () => {
  const a = text(new ScramSha256Client("x").clientFirstMessage());
  const b = text(new ScramSha256Client("x").clientFirstMessage());
  assert.notEqual(a, b);
});

test("client that supports binding but was not offered PLUS sends the y flag in both messages", async () => {
  const client = new ScramSha256Client("pw", { clientSupportsBinding: true });
  assert.equal(client.mechanism, "SCRAM-SHA-256");
  const server = fakeServer("pw");
  const serverFirst = server.first(client.clientFirstMessage());
  const clientFinal = await client.handleServerFirst(serverFirst);
  assert.match(text(clientFinal), /^c=eSws,/); // base64("y,,")
  client.verifyServerFinal(server.final(clientFinal));
});

test("SCRAM-SHA-256-PLUS binds the certificate hash into the client-final message", async () => {
  const binding: ChannelBinding = { type: "tls-server-end-point", data: Buffer.alloc(32, 0xab) };
  const client = new ScramSha256Client("pw", { channelBinding: binding });
  assert.equal(client.mechanism, "SCRAM-SHA-256-PLUS");
  assert.match(text(client.clientFirstMessage()), /^p=tls-server-end-point,,n=,r=/);
  // Rebuild from a fresh client to run the full exchange with the checking server.
  const fresh = new ScramSha256Client("pw", { channelBinding: binding });
  const server = fakeServer("pw", binding.data);
  assert.equal(fresh.channelBound, false);
  await exchange(fresh, server);
  assert.equal(fresh.channelBound, true);
});

test("the password goes through SASLprep: equivalent spellings give the same proof", async () => {
  const serverFirst = bytes("r=fixednonceSRV,s=MTIzNDU2Nzg5MGFiY2RlZg==,i=4096");
  const proofFor = async (password: string) => {
    const client = new ScramSha256Client(password, { nonce: "fixednonce" });
    client.clientFirstMessage();
    return text(await client.handleServerFirst(serverFirst));
  };
  assert.equal(await proofFor("I\u00ADX"), await proofFor("IX"));
  assert.notEqual(await proofFor("I\u00ADX"), await proofFor("I-X"));
});

function afterFirst(serverFirst: string): () => Promise<Buffer> {
  const client = new ScramSha256Client("pw", { nonce: "abc" });
  client.clientFirstMessage();
  return () => client.handleServerFirst(bytes(serverFirst));
}

const badServerFirst: [string, string, string][] = [
  ["nonce not starting with ours", "r=abXdef,s=c2FsdA==,i=4096", "invalid SCRAM response (nonce mismatch)"],
  ["nonce shorter than ours", "r=ab,s=c2FsdA==,i=4096", "invalid SCRAM response (nonce mismatch)"],
  ["salt not base64", "r=abcdef,s=!!!,i=4096", "malformed SCRAM message (invalid salt)"],
  ["empty salt", "r=abcdef,s=,i=4096", "malformed SCRAM message (invalid salt)"],
  ["zero iterations", "r=abcdef,s=c2FsdA==,i=0", "malformed SCRAM message (invalid iteration count)"],
  [
    "iterations not a number",
    "r=abcdef,s=c2FsdA==,i=4k",
    "malformed SCRAM message (invalid iteration count)",
  ],
  ["missing nonce", "s=c2FsdA==,i=4096", 'malformed SCRAM message (attribute "r" expected)'],
  ["missing =", "r=abcdef,s,i=4096", 'malformed SCRAM message (expected character "=" for attribute "s")'],
  [
    "garbage at end",
    "r=abcdef,s=c2FsdA==,i=4096,x=1",
    "malformed SCRAM message (garbage at end of server-first-message)",
  ],
  ["empty message", "", "malformed SCRAM message (empty message)"],
];

for (const [name, message, error] of badServerFirst) {
  test(`server-first-message refused: ${name}`, async () => {
    await assert.rejects(afterFirst(message), new AuthenticationError(error));
  });
}

test("server-final-message: malformed signatures are refused", async () => {
  for (const [message, error] of [
    ["v=AAAA", "malformed SCRAM message (invalid server signature)"],
    ["v=not base64!", "malformed SCRAM message (invalid server signature)"],
    ["x=1", 'malformed SCRAM message (attribute "v" expected)'],
    ["e=other-error,ext", "error received from server in SCRAM exchange: other-error"],
  ] as const) {
    const client = new ScramSha256Client("pw", { nonce: "abc" });
    client.clientFirstMessage();
    await client.handleServerFirst(bytes("r=abcdef,s=c2FsdA==,i=1"));
    assert.throws(() => client.verifyServerFinal(bytes(message)), new AuthenticationError(error));
  }
});

test("steps out of order are refused", async () => {
  const client = new ScramSha256Client("pw");
  await assert.rejects(
    () => client.handleServerFirst(bytes("r=x,s=c2FsdA==,i=1")),
    /invalid SCRAM exchange state/,
  );
  client.clientFirstMessage();
  assert.throws(() => client.clientFirstMessage(), /invalid SCRAM exchange state/);
  assert.throws(() => client.verifyServerFinal(bytes("v=AAAA")), /invalid SCRAM exchange state/);
});

test("a test nonce with a comma is refused", () => {
  assert.throws(() => new ScramSha256Client("pw", { nonce: "a,b" }), AuthenticationError);
});

const binding: ChannelBinding = { type: "tls-server-end-point", data: Buffer.alloc(32) };
const BOTH = ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"];

test("chooseScramMechanism follows libpq", () => {
  assert.deepEqual(chooseScramMechanism(BOTH, "prefer", binding), {
    mechanism: "SCRAM-SHA-256-PLUS",
    useBinding: true,
    clientSupportsBinding: false,
  });
  assert.deepEqual(chooseScramMechanism(BOTH, "disable", binding), {
    mechanism: "SCRAM-SHA-256",
    useBinding: false,
    clientSupportsBinding: false,
  });
  assert.deepEqual(chooseScramMechanism(["SCRAM-SHA-256"], "prefer", binding), {
    mechanism: "SCRAM-SHA-256",
    useBinding: false,
    clientSupportsBinding: true,
  });
  assert.deepEqual(chooseScramMechanism(["SCRAM-SHA-256"], "prefer", undefined), {
    mechanism: "SCRAM-SHA-256",
    useBinding: false,
    clientSupportsBinding: false,
  });
  assert.deepEqual(chooseScramMechanism(BOTH, "require", binding).mechanism, "SCRAM-SHA-256-PLUS");
});

test("chooseScramMechanism errors use libpq's wording", () => {
  assert.throws(
    () => chooseScramMechanism(["SCRAM-SHA-256"], "require", binding),
    new AuthenticationError(
      "channel binding is required, but server did not offer an authentication method that supports channel binding",
    ),
  );
  assert.throws(
    () => chooseScramMechanism(BOTH, "require", undefined),
    new AuthenticationError("channel binding required, but SSL not in use"),
  );
  assert.throws(
    () => chooseScramMechanism(BOTH, "prefer", undefined),
    new AuthenticationError("server offered SCRAM-SHA-256-PLUS authentication over a non-SSL connection"),
  );
  assert.throws(
    () => chooseScramMechanism(["OAUTHBEARER"], "prefer", binding),
    new AuthenticationError("none of the server's SASL authentication mechanisms are supported"),
  );
});

test("channel_binding=require refuses non-SASL requests and an unbound AuthenticationOk", async () => {
  assert.throws(
    () => checkChannelBindingRequirement("require", "other", undefined),
    /channel binding required but not supported by server's authentication request/,
  );
  assert.throws(
    () => checkChannelBindingRequirement("require", "ok", undefined),
    /server authenticated client without channel binding/,
  );
  const unbound = new ScramSha256Client("pw");
  await exchange(unbound, fakeServer("pw"));
  assert.throws(() => checkChannelBindingRequirement("require", "ok", unbound), AuthenticationError);
  const bound = new ScramSha256Client("pw", { channelBinding: binding });
  await exchange(bound, fakeServer("pw", binding.data));
  checkChannelBindingRequirement("require", "ok", bound);
  checkChannelBindingRequirement("require", "sasl", undefined);
  checkChannelBindingRequirement("prefer", "other", undefined);
  checkChannelBindingRequirement("disable", "ok", undefined);
});
