import assert from "node:assert/strict";
import { test } from "node:test";
import { md5PasswordResponse } from "../../../src/connection/auth/md5.js";

// Expected values computed independently with Python's hashlib:
// "md5" + md5(md5(password + user).hexdigest() + salt).hexdigest()
test("md5 response matches independently computed values", () => {
  assert.equal(
    md5PasswordResponse("postgres", "secret", Buffer.from([1, 2, 3, 4])),
    "md5bb41a296aab6baccb36ff243a562abff",
  );
  assert.equal(
    md5PasswordResponse("repl_md5", "pw-md5-2", Buffer.from([0xde, 0xad, 0xbe, 0xef])),
    "md5a17ebcf8b10a1ad773079fcb32e9901b",
  );
});

test("md5 response depends on user, password and every salt byte", () => {
  const base = md5PasswordResponse("u", "p", Buffer.from([0, 0, 0, 0]));
  assert.match(base, /^md5[0-9a-f]{32}$/);
  assert.notEqual(md5PasswordResponse("v", "p", Buffer.from([0, 0, 0, 0])), base);
  assert.notEqual(md5PasswordResponse("u", "q", Buffer.from([0, 0, 0, 0])), base);
  assert.notEqual(md5PasswordResponse("u", "p", Buffer.from([0, 0, 0, 1])), base);
});
