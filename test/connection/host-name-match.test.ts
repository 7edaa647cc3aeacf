/** libpq's host name rules for verify-full (fe-secure-common.c), as pure functions. */
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  checkPeerName,
  parseSubjectAltName,
  wildcardCertificateMatch,
} from "../../src/connection/host-name-match.js";
import { propertySettings, propertyTimeoutMs } from "../support/property-runs.js";

describe("libpq's name rules", () => {
  test("wildcard_certificate_match cases", () => {
    const cases: [string, string, boolean][] = [
      ["*.example.test", "db.example.test", true],
      ["*.EXAMPLE.test", "DB.example.TEST", true],
      ["*.example.test", "a.db.example.test", false],
      ["*.example.test", "example.test", false],
      ["*.example.test", ".example.test", false],
      ["f*.example.test", "foo.example.test", false],
      ["*f.example.test", "ff.example.test", false],
      ["db.*.test", "db.example.test", false],
      ["*", "localhost", false],
      ["*.", "a.", false],
    ];
    for (const [pattern, host, expected] of cases) {
      assert.equal(wildcardCertificateMatch(pattern, host), expected, `${pattern} vs ${host}`);
    }
  });

  test("SANs of the host's kind rule out the CN; IP SANs compare as addresses", () => {
    assert.equal(checkPeerName("db.test", { commonName: "db.test" }), undefined);
    assert.equal(
      checkPeerName("db.test", { subjectAltName: "DNS:other.test", commonName: "db.test" })?.message,
      'server certificate for "other.test" does not match host name "db.test"',
    );
    assert.equal(checkPeerName("::1", { subjectAltName: "IP Address:0:0:0:0:0:0:0:1" }), undefined);
    assert.equal(
      checkPeerName("127.0.0.1", { subjectAltName: "DNS:localhost", commonName: "127.0.0.1" }),
      undefined,
    );
    assert.match(
      checkPeerName("127.0.0.1", { subjectAltName: "IP Address:10.0.0.1", commonName: "127.0.0.1" })
        ?.message ?? "",
      /^server certificate for "10\.0\.0\.1" does not match host name "127\.0\.0\.1"$/,
    );
    assert.equal(
      checkPeerName("db.test", {})?.message,
      "could not get server's host name from server certificate",
    );
    assert.equal(
      checkPeerName("db.test", { subjectAltName: 'DNS:"db.test\\u0000.evil"' })?.message,
      "SSL certificate's name contains embedded null",
    );
    assert.deepEqual(parseSubjectAltName('DNS:a, DNS:"b, c", IP Address:1.2.3.4, email:x@y'), [
      { kind: "DNS", value: "a" },
      { kind: "DNS", value: "b, c" },
      { kind: "IP", value: "1.2.3.4" },
    ]);
  });

  const settings = propertySettings(500);
  test("property: a wildcard matches exactly the hosts with one label in its place", {
    timeout: propertyTimeoutMs(settings),
  }, () => {
    const label = fc.stringMatching(/^[a-z0-9-]{1,8}$/);
    fc.assert(
      fc.property(
        fc.array(label, { minLength: 1, maxLength: 3 }),
        fc.array(label, { minLength: 1, maxLength: 3 }),
        fc.string({ maxLength: 3 }),
        (suffix, hostLabels, junk) => {
          const host = [...hostLabels, ...suffix].join(".");
          const whole = `*.${suffix.join(".")}`;
          assert.equal(wildcardCertificateMatch(whole, host), hostLabels.length === 1);
          // Anything else around the "*" never matches.
          if (junk !== "" && !junk.includes("*")) {
            assert.equal(wildcardCertificateMatch(`${junk}*.${suffix.join(".")}`, host), false);
            assert.equal(wildcardCertificateMatch(`*${junk}.${suffix.join(".")}`, host), false);
          }
        },
      ),
      settings,
    );
  });
});
