/**
 * Roles every test cluster has, and the pg_hba.conf that gives each one exactly one way in.
 * Order in pg_hba.conf matters: the first line matching type, database, user and address decides.
 */

export const TEST_USERS = {
  /** Bootstrap superuser (initdb -U); trust over the unix socket and 127.0.0.1; the harness uses it. */
  superuser: { name: "pgwal_super" },
  /** REPLICATION, hba "trust". */
  trust: { name: "repl_trust" },
  /** REPLICATION, hba "password" (cleartext on the wire). */
  password: { name: "repl_password", password: "pw-cleartext-1" },
  /** REPLICATION, hba "md5", password stored as an MD5 hash so the server really asks for MD5. */
  md5: { name: "repl_md5", password: "pw-md5-2" },
  /** REPLICATION, hba "scram-sha-256". */
  scram: { name: "repl_scram", password: "pw-scram-3" },
  /** REPLICATION, only a hostssl line (scram); a hostnossl line rejects it without TLS. */
  sslOnly: { name: "repl_ssl", password: "pw-ssl-4" },
  /** REPLICATION, hostssl "cert": client certificate CN=repl_cert signed by the test CA. */
  cert: { name: "repl_cert" },
  /** LOGIN without REPLICATION, scram: passes pg_hba but the walsender refuses it. */
  noReplication: { name: "norepl", password: "pw-norepl-5" },
  /** REPLICATION with a password but no pg_hba.conf replication line at all. */
  noHba: { name: "repl_nohba", password: "pw-nohba-6" },
} as const;

const LOOPBACKS = ["127.0.0.1/32", "::1/128"];

/** pg_hba.conf lines for `database` ("replication" or "all") on both loopback addresses. */
function hostLines(type: string, database: string, user: string, method: string): string[] {
  return LOOPBACKS.map((address) => `${type}\t${database}\t${user}\t${address}\t${method}`);
}

/** The complete pg_hba.conf of a test cluster. */
export function pgHbaConf(): string {
  const u = TEST_USERS;
  const lines: string[] = [
    "# Written by test/support/cluster.ts. First match wins.",
    "# TYPE\tDATABASE\tUSER\tADDRESS\tMETHOD",
    `local\tall\t${u.superuser.name}\ttrust`,
    `local\treplication\t${u.superuser.name}\ttrust`,
    ...hostLines("host", "all", u.superuser.name, "trust"),
    ...hostLines("host", "replication", u.superuser.name, "trust"),
  ];
  // Each test role: one replication rule and the same rule for ordinary databases (handy for psql checks).
  for (const database of ["replication", "all"]) {
    lines.push(
      ...hostLines("host", database, u.trust.name, "trust"),
      ...hostLines("host", database, u.password.name, "password"),
      ...hostLines("host", database, u.md5.name, "md5"),
      ...hostLines("host", database, u.scram.name, "scram-sha-256"),
      ...hostLines("hostnossl", database, u.sslOnly.name, "reject"),
      ...hostLines("hostssl", database, u.sslOnly.name, "scram-sha-256"),
      ...hostLines("hostssl", database, u.cert.name, "cert"),
      ...hostLines("host", database, u.noReplication.name, "scram-sha-256"),
    );
  }
  // repl_nohba may use ordinary databases but has no replication line: the server answers
  // 'no pg_hba.conf entry for replication connection'.
  lines.push(...hostLines("host", "all", u.noHba.name, "scram-sha-256"));
  return `${lines.join("\n")}\n`;
}

function quoteLiteral(text: string): string {
  return `'${text.replaceAll("'", "''")}'`;
}

/** SQL (run as the superuser) that creates every role except the bootstrap superuser. */
export function createUsersSql(): string {
  const u = TEST_USERS;
  const pw = (text: string) => `PASSWORD ${quoteLiteral(text)}`;
  return [
    "SET client_min_messages = error;",
    "SET password_encryption = 'scram-sha-256';",
    `CREATE ROLE ${u.trust.name} LOGIN REPLICATION;`,
    `CREATE ROLE ${u.password.name} LOGIN REPLICATION ${pw(u.password.password)};`,
    `CREATE ROLE ${u.scram.name} LOGIN REPLICATION ${pw(u.scram.password)};`,
    `CREATE ROLE ${u.sslOnly.name} LOGIN REPLICATION ${pw(u.sslOnly.password)};`,
    `CREATE ROLE ${u.cert.name} LOGIN REPLICATION;`,
    `CREATE ROLE ${u.noReplication.name} LOGIN NOREPLICATION ${pw(u.noReplication.password)};`,
    `CREATE ROLE ${u.noHba.name} LOGIN REPLICATION ${pw(u.noHba.password)};`,
    // An MD5-stored password makes an "md5" hba line really use MD5 (a SCRAM secret would upgrade it).
    "SET password_encryption = 'md5';",
    `CREATE ROLE ${u.md5.name} LOGIN REPLICATION ${pw(u.md5.password)};`,
    "",
  ].join("\n");
}
