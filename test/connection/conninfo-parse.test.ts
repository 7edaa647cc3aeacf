import assert from "node:assert/strict";
import { test } from "node:test";
import { type ConnParams, isConnectionUri, parseConnectionString } from "../../src/connection/conninfo.js";
import { UsageError } from "../../src/errors.js";

// URIs and results from libpq's own regression table (src/interfaces/libpq/t/001_uri.pl) and the
// "Connection URIs" examples of the libpq documentation.
const uris: [string, ConnParams][] = [
  [
    "postgresql://uri-user:secret@host:12345/db",
    { user: "uri-user", password: "secret", dbname: "db", host: "host", port: "12345" },
  ],
  ["postgresql://uri-user@host:12345/db", { user: "uri-user", dbname: "db", host: "host", port: "12345" }],
  ["postgresql://uri-user@host/db", { user: "uri-user", dbname: "db", host: "host" }],
  ["postgresql://host:12345/db", { dbname: "db", host: "host", port: "12345" }],
  ["postgresql://host/db", { dbname: "db", host: "host" }],
  ["postgresql://uri-user@host:12345/", { user: "uri-user", host: "host", port: "12345" }],
  ["postgresql://uri-user@host/", { user: "uri-user", host: "host" }],
  ["postgresql://uri-user@", { user: "uri-user" }],
  ["postgresql://host:12345/", { host: "host", port: "12345" }],
  ["postgresql://host:12345", { host: "host", port: "12345" }],
  ["postgresql://host/", { host: "host" }],
  ["postgresql://host", { host: "host" }],
  ["postgresql://", {}],
  ["postgresql://?hostaddr=127.0.0.1", { hostaddr: "127.0.0.1" }],
  ["postgresql://example.com?hostaddr=63.1.2.4", { host: "example.com", hostaddr: "63.1.2.4" }],
  ["postgresql://%68ost/", { host: "host" }],
  ["postgresql://host/db?user=uri-user", { user: "uri-user", dbname: "db", host: "host" }],
  [
    "postgresql://host/db?user=uri-user&port=12345",
    { user: "uri-user", dbname: "db", host: "host", port: "12345" },
  ],
  [
    "postgresql://host/db?u%73er=someotheruser&port=12345",
    { user: "someotheruser", dbname: "db", host: "host", port: "12345" },
  ],
  ["postgresql://host:12345?user=uri-user", { user: "uri-user", host: "host", port: "12345" }],
  ["postgresql://host?user=uri-user", { user: "uri-user", host: "host" }],
  ["postgresql://host?", { host: "host" }],
  ["postgresql://[::1]:12345/db", { dbname: "db", host: "::1", port: "12345" }],
  ["postgresql://[::1]/db", { dbname: "db", host: "::1" }],
  ["postgresql://[2001:db8::1234]/", { host: "2001:db8::1234" }],
  ["postgresql://[200z:db8::1234]/", { host: "200z:db8::1234" }],
  ["postgresql://[::1]", { host: "::1" }],
  ["postgres://", {}],
  ["postgres:///", {}],
  ["postgres:///db", { dbname: "db" }],
  ["postgres://uri-user@/db", { user: "uri-user", dbname: "db" }],
  ["postgres://?host=/path/to/socket/dir", { host: "/path/to/socket/dir" }],
  ["postgres://@host", { host: "host" }],
  ["postgres://host:/", { host: "host" }],
  ["postgres://:12345/", { port: "12345" }],
  ["postgres://otheruser@?host=/no/such/directory", { user: "otheruser", host: "/no/such/directory" }],
  ["postgres://otheruser@/?host=/no/such/directory", { user: "otheruser", host: "/no/such/directory" }],
  [
    "postgres://otheruser@:12345?host=/no/such/socket/path",
    { user: "otheruser", host: "/no/such/socket/path", port: "12345" },
  ],
  [
    "postgres://otheruser@:12345/db?host=/path/to/socket",
    { user: "otheruser", dbname: "db", host: "/path/to/socket", port: "12345" },
  ],
  ["postgres://:12345/db?host=/path/to/socket", { dbname: "db", host: "/path/to/socket", port: "12345" }],
  ["postgres://:12345?host=/path/to/socket", { host: "/path/to/socket", port: "12345" }],
  ["postgres://%2Fvar%2Flib%2Fpostgresql/dbname", { dbname: "dbname", host: "/var/lib/postgresql" }],
  // Documentation examples.
  ["postgresql://localhost", { host: "localhost" }],
  ["postgresql://localhost:5433", { host: "localhost", port: "5433" }],
  ["postgresql://localhost/mydb", { host: "localhost", dbname: "mydb" }],
  ["postgresql://user@localhost", { user: "user", host: "localhost" }],
  ["postgresql://user:secret@localhost", { user: "user", password: "secret", host: "localhost" }],
  [
    "postgresql://other@localhost/otherdb?connect_timeout=10&application_name=myapp",
    { user: "other", host: "localhost", dbname: "otherdb", connect_timeout: "10", application_name: "myapp" },
  ],
  [
    "postgresql://host1:123,host2:456/somedb?target_session_attrs=any&application_name=myapp",
    {
      host: "host1,host2",
      port: "123,456",
      dbname: "somedb",
      target_session_attrs: "any",
      application_name: "myapp",
    },
  ],
  ["postgresql:///mydb?host=localhost&port=5433", { dbname: "mydb", host: "localhost", port: "5433" }],
  [
    "postgresql://user@localhost:5433/mydb?options=-c%20synchronous_commit%3Doff",
    { user: "user", host: "localhost", port: "5433", dbname: "mydb", options: "-c synchronous_commit=off" },
  ],
  ["postgresql://[2001:db8::1234]/database", { host: "2001:db8::1234", dbname: "database" }],
  ["postgresql:///dbname?host=/var/lib/postgresql", { dbname: "dbname", host: "/var/lib/postgresql" }],
  ["postgresql://host1:1,host2:2,host3:3/", { host: "host1,host2,host3", port: "1,2,3" }],
  // Hosts without ports leave empty port slots (they mean the default port).
  ["postgresql://h1,h2:5433,[::1]/db", { host: "h1,h2,::1", port: ",5433,", dbname: "db" }],
  // Percent-encoding in user, password and dbname; UTF-8 sequences decode to one character.
  [
    "postgresql://us%40er:p%40ss%3Aw%2Fd@host/d%C3%A9b",
    { user: "us@er", password: "p@ss:w/d", host: "host", dbname: "déb" },
  ],
  // JDBC-style ssl=true and the old requiressl keyword.
  ["postgresql://host?ssl=true", { host: "host", sslmode: "require" }],
  ["postgresql://host?requiressl=1", { host: "host", sslmode: "require" }],
  ["postgresql://host?requiressl=0", { host: "host", sslmode: "prefer" }],
  // A later query parameter overrides the user from the authority part; one trailing & is fine.
  ["postgresql://a@host?user=b&", { user: "b", host: "host" }],
];

for (const [uri, expected] of uris) {
  test(`URI ${uri}`, () => {
    assert.equal(isConnectionUri(uri), true);
    assert.deepEqual(parseConnectionString(uri), expected);
  });
}

const uriErrors: [string, string][] = [
  ["postgresql://host/db?u%7aer=someotheruser&port=12345", 'invalid URI query parameter: "uzer"'],
  ["postgresql://host?uzer=", 'invalid URI query parameter: "uzer"'],
  ["postgre://", 'missing "=" after "postgre://" in connection info string'],
  [
    "postgres://[::1",
    'end of string reached when looking for matching "]" in IPv6 host address in URI: "postgres://[::1"',
  ],
  ["postgres://[]", 'IPv6 host address may not be empty in URI: "postgres://[]"'],
  [
    "postgres://[::1]z",
    'unexpected character "z" at position 17 in URI (expected ":" or "/"): "postgres://[::1]z"',
  ],
  ["postgresql://host?zzz", 'missing key/value separator "=" in URI query parameter: "zzz"'],
  ["postgresql://host?value1&value2", 'missing key/value separator "=" in URI query parameter: "value1"'],
  ["postgresql://host?key=key=value", 'extra key/value separator "=" in URI query parameter: "key"'],
  ["postgresql://host?port=1&&b=2", 'missing key/value separator "=" in URI query parameter: ""'],
  ["postgres://host?dbname=%XXfoo", 'invalid percent-encoded token: "%XXfoo"'],
  ["postgresql://a%00b", 'forbidden value %00 in percent-encoded value: "a%00b"'],
  ["postgresql://%zz", 'invalid percent-encoded token: "%zz"'],
  ["postgresql://%1", 'invalid percent-encoded token: "%1"'],
  ["postgresql://%", 'invalid percent-encoded token: "%"'],
];

for (const [uri, message] of uriErrors) {
  test(`URI error: ${uri}`, () => {
    assert.throws(() => parseConnectionString(uri), new UsageError(message));
  });
}

test("URI errors never show the password, from the user info or the query", () => {
  const cases: [string, string][] = [
    [
      "postgresql://u:hunter2@[::1]z",
      'unexpected character "z" at position 25 in URI (expected ":" or "/"): "postgresql://u:***@[::1]z"',
    ],
    [
      "postgresql://u:hunter2@[::1",
      'end of string reached when looking for matching "]" in IPv6 host address in URI: "postgresql://u:***@[::1"',
    ],
    [
      "postgresql://[]?password=hunter2",
      'IPv6 host address may not be empty in URI: "postgresql://[]?password=***"',
    ],
    ["postgresql://u:hun%zzter2@host", 'invalid percent-encoded token: "***"'],
    ["postgresql://host?password=hun%00ter2", 'forbidden value %00 in percent-encoded value: "***"'],
  ];
  for (const [uri, message] of cases) {
    assert.throws(
      () => parseConnectionString(uri),
      (error: unknown) => {
        assert.ok(error instanceof UsageError);
        assert.equal(error.message, message);
        assert.ok(!error.message.includes("hunter2") && !error.message.includes("hun"));
        return true;
      },
    );
  }
});

// keyword=value strings: quoting and escapes as documented ("Keyword/Value Connection Strings").
const keywordValue: [string, ConnParams][] = [
  [
    "host=localhost port=5432 dbname=mydb connect_timeout=10",
    { host: "localhost", port: "5432", dbname: "mydb", connect_timeout: "10" },
  ],
  ["  host = localhost\tport=\n5432  ", { host: "localhost", port: "5432" }],
  ["options = 'a value'", { options: "a value" }],
  ["password='it\\'s a \\\\ path'", { password: "it's a \\ path" }],
  ["password=un\\ quoted\\'", { password: "un quoted'" }],
  ["host='' user=x", { host: "", user: "x" }],
  ["dbname=a dbname=b", { dbname: "b" }],
  ["application_name='' sslmode=verify-full", { application_name: "", sslmode: "verify-full" }],
  ["requiressl=1", { sslmode: "require" }],
  ["host=h1,h2 port=5432,5433", { host: "h1,h2", port: "5432,5433" }],
  ["", {}],
];

for (const [text, expected] of keywordValue) {
  test(`keyword=value ${JSON.stringify(text)}`, () => {
    assert.equal(isConnectionUri(text), false);
    assert.deepEqual(parseConnectionString(text), expected);
  });
}

const keywordValueErrors: [string, string][] = [
  ["host", 'missing "=" after "host" in connection info string'],
  ["mydb", 'missing "=" after "mydb" in connection info string'],
  ["host localhost", 'missing "=" after "host" in connection info string'],
  ["host='localhost", "unterminated quoted string in connection info string"],
  ["hots=localhost", 'invalid connection option "hots"'],
  ["=x", 'invalid connection option ""'],
  // An unquoted password with a space: what follows may be the rest of the secret, so it is masked.
  ["password=correct horse battery=staple", 'missing "=" after "***" in connection info string'],
  ["password=correct horse=battery", 'invalid connection option "***"'],
];

for (const [text, message] of keywordValueErrors) {
  test(`keyword=value error: ${JSON.stringify(text)}`, () => {
    assert.throws(() => parseConnectionString(text), new UsageError(message));
  });
}
