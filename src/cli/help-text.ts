/**
 * Help texts. The option list and layout follow pg_receivewal's `--help` (same options, same
 * groups) so that people and wrappers find what they expect; the descriptions are pgwal's own.
 */
/** How to invoke the receive command under this program name: "pg_receivewal" or "pgwal receive". */
export function receiveCommandName(programName: string): string {
  return programName === "pg_receivewal" ? programName : `${programName} receive`;
}

const ZSTD_HELP = `
                         (pgwal also: zstd[:LEVEL], with Node.js 22.15+)`;

export function receiveHelpText(programName: string): string {
  const command = receiveCommandName(programName);
  return `${command} streams write-ahead log from a PostgreSQL server into a directory.

Usage:
  ${command} [OPTION]...

Options:
  -D, --directory=DIR    write WAL segment files into DIR
  -E, --endpos=LSN       stop once WAL up to LSN has been received
      --if-not-exists    with --create-slot: succeed if the slot already exists
  -n, --no-loop          exit on connection loss instead of reconnecting
      --no-sync          skip fsync (faster, unsafe on power loss)
  -s, --status-interval=SECS
                         seconds between status packets to the server
                         (default: 10; 0 disables them)
  -S, --slot=SLOTNAME    stream through this replication slot
      --synchronous      fsync and report each batch of WAL at once
  -v, --verbose          log progress (repeat for debug output)
  -V, --version          print the version, then exit
  -Z, --compress=METHOD[:DETAIL]
                         compress segments: gzip[:LEVEL], lz4[:LEVEL], none,
                         or a bare gzip level (0 = none)${programName === "pg_receivewal" ? "" : ZSTD_HELP}
  -?, --help             show this help, then exit

Connection options:
  -d, --dbname=CONNSTR   libpq connection string (URI or keyword=value)
  -h, --host=HOSTNAME    server host name or socket directory
  -p, --port=PORT        server port
  -U, --username=NAME    user name to connect as
  -w, --no-password      never prompt for a password
  -W, --password         prompt for a password before connecting

Optional actions:
      --create-slot      create the slot named by --slot, then exit
      --drop-slot        drop the slot named by --slot, then exit

Segment hooks (pgwal):
      --on-segment=COMMAND run COMMAND for each completed segment and history
                           file, in order, retried until it succeeds
                           (%p = path, %f = file name, %% = %)
      --hook-holds-slot    keep the slot at the last segment whose hook succeeded
      --hook-state-file=PATH
                           where hook progress is kept (default: per archive
                           in $STATE_DIRECTORY or ~/.local/state/pgwal)

Object store (pgwal):
      --target=s3://BUCKET/PREFIX
                           also upload complete segments, history files and
                           the .partial there (AWS credentials, AWS_REGION)
      --s3-endpoint=URL    S3-compatible endpoint (default: AWS_ENDPOINT_URL_S3)
      --s3-addressing-style=path|virtual
                           default: path with a custom endpoint
      --upload-concurrency=N
                           uploads at the same time (default: 4)
      --partial-upload-interval=SECS
                           upload the .partial this often (default: 10; 0 = off)
      --upload-holds-slot  keep the slot at the end of WAL that is in the bucket
      --upload-state-file=PATH
                           where upload progress is kept (default: per archive
                           and target in $STATE_DIRECTORY or ~/.local/state/pgwal)

Retention (pgwal):
      --retention=DURATION remove segments completed more than DURATION ago
                           (e.g. 7d) after each new segment; see "cleanup"

Monitoring (pgwal):
      --metrics-listen=HOST:PORT
                           serve Prometheus /metrics and /healthz there

Logging (pgwal):
      --log-format=FORMAT  json or pretty (default: pretty on a terminal, else json)
      --log-level=LEVEL    trace, debug, info, warn, error, fatal or silent
                           (default: warn; info with -v; debug with -vv)

Every long option can also be given as an environment variable PGWAL_<NAME>
(e.g. PGWAL_DIRECTORY=/wal, PGWAL_SLOT=archiver, PGWAL_NO_LOOP=true);
the command line wins. Connection defaults come from PG* variables and ~/.pgpass.
`;
}
