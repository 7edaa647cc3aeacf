/**
 * Connection settings the way libpq understands them: connection strings (URI and keyword=value),
 * PG* environment variables, defaults, and the derived per-host targets.
 *
 * Behaviour follows libpq's fe-connect.c (conninfo_parse, conninfo_uri_parse_options,
 * pqConnectOptions2) and its error wording, with these deliberate differences:
 * - Error messages never contain a password: URIs are quoted with the password masked.
 * - An empty value counts as "not given" in every source (pg_receivewal drops empty values of its -d
 *   string before handing everything to libpq, and an empty PG* variable is not a useful setting).
 * - Options that would change security or host selection but that pgwal does not implement (service
 *   files, require_auth, requirepeer, CRLs, target_session_attrs other than "any", …) are refused
 *   with a UsageError instead of being silently ignored. TCP and GSS tuning options are accepted and
 *   ignored.
 */
import { existsSync } from "node:fs";
import { homedir, userInfo } from "node:os";
import { join } from "node:path";
import { UsageError } from "../errors.js";

/** Raw libpq keywords → values, as parsed from a string or given as options. */
export type ConnParams = Record<string, string>;

export type SslMode = "disable" | "allow" | "prefer" | "require" | "verify-ca" | "verify-full";
export type ChannelBindingMode = "disable" | "prefer" | "require";

export interface HostTarget {
  /** What the user named (host name, IP, or unix-socket directory). For messages. */
  host: string;
  /** hostaddr when given: the IP actually dialled (host then only names it for TLS/pgpass). */
  hostaddr?: string;
  port: number;
  /** Set for unix-domain sockets: `${dir}/.s.PGSQL.${port}`. */
  socketPath?: string;
}

export interface ConnectionSettings {
  /** One per host (libpq: host, hostaddr and port lists; a port list of 1 applies to all). */
  targets: HostTarget[];
  user: string;
  /** From the password keyword / PGPASSWORD; .pgpass is looked up per target at connect time. */
  password?: string;
  /** PGPASSFILE / passfile, or ~/.pgpass. */
  passfile: string;
  dbname: string;
  applicationName?: string;
  fallbackApplicationName?: string;
  options?: string;
  /** "true" | "database" | …: passed through in the startup packet. */
  replication?: string;
  /** Default "prefer" ("verify-full" when sslrootcert=system). */
  sslmode: SslMode;
  /** Given explicitly (a path or "system"), or ~/.postgresql/root.crt when that file exists. */
  sslrootcert?: string;
  /** Given explicitly, or ~/.postgresql/postgresql.crt / .key when they exist. */
  sslcert?: string;
  sslkey?: string;
  /** Send TLS SNI (libpq: sslsni starting with "1"); default true. */
  sslsni: boolean;
  /** connect_timeout in ms per host; undefined = no timeout. libpq raises 1 s to 2 s. */
  connectTimeoutMs?: number;
  /** Default "prefer". */
  channelBinding: ChannelBindingMode;
  requirePeerDefaults?: never;
}

export interface SettingsSources {
  /** Highest precedence after `forced`: explicit options (e.g. -h/-p/-U of the CLI), as keywords. */
  overrides?: ConnParams;
  /** A connection string (-d). */
  connectionString?: string;
  /** Forced keywords that always win (e.g. replication: "true", dbname for physical). */
  forced?: ConnParams;
  /** Lowest: environment (PGHOST, PGPORT, PGUSER, …). Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  /** OS user name (default user) and home directory (for .pgpass and ~/.postgresql). For tests. */
  osUser?: string;
  homeDir?: string;
  /** Default unix socket directories, in order of preference (default DEFAULT_SOCKET_DIRS). */
  socketDirs?: string[];
}

export const DEFAULT_PORT = 5432;

/** Where PostgreSQL builds put the socket: Debian/Ubuntu/RHEL packages, then the upstream default. */
export const DEFAULT_SOCKET_DIRS: readonly string[] = ["/var/run/postgresql", "/tmp"];

/** sizeof(sockaddr_un.sun_path) on Linux, including the terminating NUL. */
const UNIX_SOCKET_PATH_BUFFER = 108;

/**
 * Every keyword libpq knows (up to PostgreSQL 18) and its environment variable, so that connection
 * strings written for libpq parse here. Which ones pgwal acts on is decided in resolve.
 */
const KEYWORD_ENV: Readonly<Record<string, string | null>> = {
  service: "PGSERVICE",
  user: "PGUSER",
  password: "PGPASSWORD",
  passfile: "PGPASSFILE",
  channel_binding: "PGCHANNELBINDING",
  connect_timeout: "PGCONNECT_TIMEOUT",
  dbname: "PGDATABASE",
  host: "PGHOST",
  hostaddr: "PGHOSTADDR",
  port: "PGPORT",
  client_encoding: "PGCLIENTENCODING",
  options: "PGOPTIONS",
  application_name: "PGAPPNAME",
  fallback_application_name: null,
  keepalives: null,
  keepalives_idle: null,
  keepalives_interval: null,
  keepalives_count: null,
  tcp_user_timeout: null,
  sslmode: "PGSSLMODE",
  sslnegotiation: "PGSSLNEGOTIATION",
  sslcompression: "PGSSLCOMPRESSION",
  sslcert: "PGSSLCERT",
  sslkey: "PGSSLKEY",
  sslcertmode: "PGSSLCERTMODE",
  sslpassword: null,
  sslkeylogfile: "PGSSLKEYLOGFILE",
  sslrootcert: "PGSSLROOTCERT",
  sslcrl: "PGSSLCRL",
  sslcrldir: "PGSSLCRLDIR",
  sslsni: "PGSSLSNI",
  requirepeer: "PGREQUIREPEER",
  require_auth: "PGREQUIREAUTH",
  min_protocol_version: "PGMINPROTOCOLVERSION",
  max_protocol_version: "PGMAXPROTOCOLVERSION",
  ssl_min_protocol_version: "PGSSLMINPROTOCOLVERSION",
  ssl_max_protocol_version: "PGSSLMAXPROTOCOLVERSION",
  gssencmode: "PGGSSENCMODE",
  krbsrvname: "PGKRBSRVNAME",
  gsslib: "PGGSSLIB",
  gssdelegation: "PGGSSDELEGATION",
  scram_client_key: null,
  scram_server_key: null,
  replication: null,
  target_session_attrs: "PGTARGETSESSIONATTRS",
  load_balance_hosts: "PGLOADBALANCEHOSTS",
  oauth_issuer: null,
  oauth_client_id: null,
  oauth_client_secret: null,
  oauth_scope: null,
};

/** Keywords whose values must never appear in a message. */
const SECRET_KEYWORDS = new Set([
  "password",
  "sslpassword",
  "oauth_client_secret",
  "scram_client_key",
  "scram_server_key",
]);

const MASK = "***";

function isKeyword(name: string): boolean {
  return Object.hasOwn(KEYWORD_ENV, name);
}

/** libpq's conninfo_storeval: requiressl is an old spelling of sslmode; unknown keywords are errors. */
function storeValue(params: ConnParams, keyword: string, value: string): boolean {
  if (keyword === "requiressl") {
    keyword = "sslmode";
    value = value.startsWith("1") ? "require" : "prefer";
  }
  if (!isKeyword(keyword)) return false;
  params[keyword] = value;
  return true;
}

// ---------------------------------------------------------------------------------------------
// keyword = value strings

/** C isspace() in the "C" locale. */
function isSpace(char: string | undefined): boolean {
  return char === " " || char === "\t" || char === "\n" || char === "\v" || char === "\f" || char === "\r";
}

function parseKeywordValue(text: string): ConnParams {
  const params: ConnParams = {};
  let i = 0;
  let previousKeyword: string | undefined;
  let previousWasBare = false;
  // A bare (unquoted) secret value ends at a space; what follows may be the rest of the secret.
  const shown = (name: string) =>
    previousKeyword && SECRET_KEYWORDS.has(previousKeyword) && previousWasBare ? MASK : name;

  while (i < text.length) {
    if (isSpace(text[i])) {
      i++;
      continue;
    }
    const nameStart = i;
    while (i < text.length && text[i] !== "=" && !isSpace(text[i])) i++;
    const name = text.slice(nameStart, i);
    while (isSpace(text[i])) i++;
    if (text[i] !== "=") {
      throw new UsageError(`missing "=" after "${shown(name)}" in connection info string`);
    }
    i++;
    while (isSpace(text[i])) i++;

    let value = "";
    const quoted = text[i] === "'";
    if (!quoted) {
      while (i < text.length && !isSpace(text[i])) {
        if (text[i] === "\\") {
          i++;
          if (i < text.length) value += text[i++];
        } else {
          value += text[i++];
        }
      }
    } else {
      i++;
      for (;;) {
        if (i >= text.length) throw new UsageError("unterminated quoted string in connection info string");
        if (text[i] === "\\") {
          i++;
          if (i < text.length) value += text[i++];
          continue;
        }
        if (text[i] === "'") {
          i++;
          break;
        }
        value += text[i++];
      }
    }
    if (!storeValue(params, name, value)) {
      throw new UsageError(`invalid connection option "${shown(name)}"`);
    }
    previousKeyword = name;
    previousWasBare = !quoted;
  }
  return params;
}

// ---------------------------------------------------------------------------------------------
// URIs: postgresql://[user[:password]@][host][:port][,...][/dbname][?param1=value1&...]

const URI_PREFIXES = ["postgresql://", "postgres://"];

function uriPrefixLength(text: string): number {
  for (const prefix of URI_PREFIXES) if (text.startsWith(prefix)) return prefix.length;
  return 0;
}

export function isConnectionUri(text: string): boolean {
  return uriPrefixLength(text) > 0;
}

interface UriRedaction {
  /** The URI with secrets replaced by MASK, for messages. */
  text: string;
  /** Maps a 1-based position in the original URI to the same character in `text`. */
  position(original: number): number;
}

/** Masks the user-info password and secret query parameters of a URI, following the parser's own splits. */
function redactUri(uri: string): UriRedaction {
  const start = uriPrefixLength(uri);
  let passwordStart = -1;
  let passwordEnd = -1;
  let i = start;
  while (i < uri.length && uri[i] !== "@" && uri[i] !== "/") i++;
  let netlocStart = start;
  if (uri[i] === "@") {
    const colon = uri.indexOf(":", start);
    if (colon >= 0 && colon < i) {
      passwordStart = colon + 1;
      passwordEnd = i;
    }
    netlocStart = i + 1;
  }
  let text =
    passwordStart >= 0 && passwordEnd > passwordStart
      ? uri.slice(0, passwordStart) + MASK + uri.slice(passwordEnd)
      : uri;
  const shift =
    passwordStart >= 0 && passwordEnd > passwordStart ? passwordEnd - passwordStart - MASK.length : 0;
  const query = uri.indexOf("?", netlocStart);
  if (query >= 0) {
    const head = text.slice(0, query - shift + 1);
    const parts = uri
      .slice(query + 1)
      .split("&")
      .map((part) => {
        const equals = part.indexOf("=");
        if (equals < 0) return part;
        let key: string;
        try {
          key = decodeURIComponent(part.slice(0, equals));
        } catch {
          key = part.slice(0, equals);
        }
        return SECRET_KEYWORDS.has(key) ? `${part.slice(0, equals + 1)}${MASK}` : part;
      });
    text = `${head}${parts.join("&")}`;
  }
  return {
    text,
    position: (original) => (passwordEnd >= 0 && original > passwordEnd ? original - shift : original),
  };
}

function hexDigit(char: string | undefined): number {
  if (char === undefined) return -1;
  const code = char.charCodeAt(0);
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  if (code >= 0x41 && code <= 0x46) return code - 0x41 + 10;
  if (code >= 0x61 && code <= 0x66) return code - 0x61 + 10;
  return -1;
}

const utf8Decoder = new TextDecoder("utf-8");

/**
 * Percent-decoding of a URI component (libpq's conninfo_uri_decode). The decoded bytes are read as
 * UTF-8. `quoted` is what error messages show for the component (masked for secrets).
 */
function uriDecode(component: string, quoted: string): string {
  const bytes: number[] = [];
  for (let i = 0; i < component.length; ) {
    const char = component[i]!;
    if (char !== "%") {
      const codePoint = component.codePointAt(i)!;
      const encoded = Buffer.from(String.fromCodePoint(codePoint), "utf8");
      for (const byte of encoded) bytes.push(byte);
      i += codePoint > 0xffff ? 2 : 1;
      continue;
    }
    const high = hexDigit(component[i + 1]);
    const low = high < 0 ? -1 : hexDigit(component[i + 2]);
    if (high < 0 || low < 0) throw new UsageError(`invalid percent-encoded token: "${quoted}"`);
    const byte = high * 16 + low;
    if (byte === 0) throw new UsageError(`forbidden value %00 in percent-encoded value: "${quoted}"`);
    bytes.push(byte);
    i += 3;
  }
  return utf8Decoder.decode(Uint8Array.from(bytes));
}

function storeUriComponent(params: ConnParams, keyword: string, raw: string): void {
  params[keyword] = uriDecode(raw, SECRET_KEYWORDS.has(keyword) ? MASK : raw);
}

function parseUriQuery(query: string, params: ConnParams): void {
  const parts = query.split("&");
  // One trailing "&" is harmless to libpq; any other empty parameter is an error.
  if (parts.at(-1) === "") parts.pop();
  for (const part of parts) {
    const equals = part.indexOf("=");
    if (equals < 0) {
      throw new UsageError(`missing key/value separator "=" in URI query parameter: "${part}"`);
    }
    const rawKeyword = part.slice(0, equals);
    const rawValue = part.slice(equals + 1);
    if (rawValue.includes("=")) {
      throw new UsageError(`extra key/value separator "=" in URI query parameter: "${rawKeyword}"`);
    }
    let keyword = uriDecode(rawKeyword, rawKeyword);
    let value = uriDecode(rawValue, SECRET_KEYWORDS.has(keyword) ? MASK : rawValue);
    // JDBC compatibility, as libpq.
    if (keyword === "ssl" && value === "true") {
      keyword = "sslmode";
      value = "require";
    }
    if (!storeValue(params, keyword, value)) {
      throw new UsageError(`invalid URI query parameter: "${keyword}"`);
    }
  }
}

function parseUri(uri: string): ConnParams {
  const params: ConnParams = {};
  const redacted = redactUri(uri);
  let p = uriPrefixLength(uri);
  const start = p;

  // User info: only if an "@" comes before any "/".
  while (p < uri.length && uri[p] !== "@" && uri[p] !== "/") p++;
  if (uri[p] === "@") {
    const at = p;
    const colon = uri.indexOf(":", start);
    const userEnd = colon >= 0 && colon < at ? colon : at;
    const user = uri.slice(start, userEnd);
    if (user !== "") storeUriComponent(params, "user", user);
    if (userEnd === colon) {
      const password = uri.slice(colon + 1, at);
      if (password !== "") storeUriComponent(params, "password", password);
    }
    p = at + 1;
  } else {
    p = start;
  }

  // host[:port] pairs separated by commas; each port may be empty.
  const hosts: string[] = [];
  const ports: string[] = [];
  let terminator: string | undefined;
  for (;;) {
    let host: string;
    if (uri[p] === "[") {
      const hostStart = ++p;
      while (p < uri.length && uri[p] !== "]") p++;
      if (p >= uri.length) {
        throw new UsageError(
          `end of string reached when looking for matching "]" in IPv6 host address in URI: "${redacted.text}"`,
        );
      }
      if (p === hostStart) {
        throw new UsageError(`IPv6 host address may not be empty in URI: "${redacted.text}"`);
      }
      host = uri.slice(hostStart, p);
      p++;
      const next = uri[p];
      if (next !== undefined && next !== ":" && next !== "/" && next !== "?" && next !== ",") {
        throw new UsageError(
          `unexpected character "${next}" at position ${redacted.position(p + 1)} in URI (expected ":" or "/"): "${redacted.text}"`,
        );
      }
    } else {
      const hostStart = p;
      while (p < uri.length && !":/?,".includes(uri[p]!)) p++;
      host = uri.slice(hostStart, p);
    }
    terminator = uri[p];
    hosts.push(host);
    let port = "";
    if (terminator === ":") {
      const portStart = ++p;
      while (p < uri.length && !"/?,".includes(uri[p]!)) p++;
      port = uri.slice(portStart, p);
      terminator = uri[p];
    }
    ports.push(port);
    if (terminator !== ",") break;
    p++;
  }
  const hostList = hosts.join(",");
  const portList = ports.join(",");
  if (hostList !== "") storeUriComponent(params, "host", hostList);
  if (portList !== "") storeUriComponent(params, "port", portList);

  if (terminator !== undefined && terminator !== "?") {
    // terminator is "/": the path is the database name, up to the query.
    const dbnameStart = ++p;
    while (p < uri.length && uri[p] !== "?") p++;
    const dbname = uri.slice(dbnameStart, p);
    terminator = uri[p];
    // An empty path leaves dbname unset (so PGDATABASE still applies), as libpq.
    if (dbname !== "") storeUriComponent(params, "dbname", dbname);
  }
  if (terminator !== undefined) parseUriQuery(uri.slice(p + 1), params);
  return params;
}

/**
 * Parses a libpq connection string, URI or keyword=value form, into the keywords it sets (no
 * defaults). Throws UsageError with libpq's wording on malformed input; messages never contain the
 * password.
 */
export function parseConnectionString(text: string): ConnParams {
  return isConnectionUri(text) ? parseUri(text) : parseKeywordValue(text);
}

// ---------------------------------------------------------------------------------------------
// Merging sources and deriving settings

function mergeSources(sources: SettingsSources, env: NodeJS.ProcessEnv): ConnParams {
  const merged: ConnParams = {};
  const apply = (params: ConnParams | undefined) => {
    for (const [keyword, value] of Object.entries(params ?? {})) {
      if (!isKeyword(keyword)) throw new UsageError(`invalid connection option "${keyword}"`);
      if (value !== "") merged[keyword] = value;
    }
  };
  // Lowest first; later sources overwrite.
  for (const [keyword, variable] of Object.entries(KEYWORD_ENV)) {
    const value = variable ? env[variable] : undefined;
    if (value !== undefined && value !== "") merged[keyword] = value;
  }
  // PGREQUIRESSL is the old spelling of PGSSLMODE=require; PGSSLMODE wins over it.
  if (merged.sslmode === undefined && env.PGREQUIRESSL?.startsWith("1")) merged.sslmode = "require";
  if (sources.connectionString !== undefined) apply(parseConnectionString(sources.connectionString));
  apply(sources.overrides);
  apply(sources.forced);
  return merged;
}

function notSupported(keyword: string, value?: string): UsageError {
  return new UsageError(
    value === undefined
      ? `connection option "${keyword}" is not supported by pgwal`
      : `connection option "${keyword}" value "${value}" is not supported by pgwal`,
  );
}

function invalidValue(keyword: string, value: string): UsageError {
  return new UsageError(`invalid ${keyword} value: "${value}"`);
}

function checkChoice(
  params: ConnParams,
  keyword: string,
  allowed: readonly string[],
  supported: readonly string[],
) {
  const value = params[keyword];
  if (value === undefined) return;
  if (!allowed.includes(value)) throw invalidValue(keyword, value);
  if (!supported.includes(value)) throw notSupported(keyword, value);
}

const TLS_VERSIONS = ["tlsv1", "tlsv1.1", "tlsv1.2", "tlsv1.3"];

/** Refuses options whose effect pgwal does not implement, where ignoring them could surprise. */
function rejectUnsupported(params: ConnParams): void {
  for (const keyword of [
    "service",
    "require_auth",
    "requirepeer",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "scram_client_key",
    "scram_server_key",
  ]) {
    if (params[keyword] !== undefined) throw notSupported(keyword);
  }
  checkChoice(params, "sslcertmode", ["disable", "allow", "require"], ["disable", "allow"]);
  const gssencmode = params.gssencmode;
  if (gssencmode !== undefined) {
    if (!["disable", "prefer", "require"].includes(gssencmode)) throw invalidValue("gssencmode", gssencmode);
    if (gssencmode === "require") {
      throw new UsageError(`gssencmode value "require" invalid when GSSAPI support is not compiled in`);
    }
  }
  checkChoice(params, "sslnegotiation", ["postgres", "direct"], ["postgres"]);
  checkChoice(
    params,
    "target_session_attrs",
    ["any", "read-write", "read-only", "primary", "standby", "prefer-standby"],
    ["any"],
  );
  checkChoice(params, "load_balance_hosts", ["disable", "random"], ["disable"]);
  for (const keyword of ["ssl_min_protocol_version", "ssl_max_protocol_version"]) {
    const value = params[keyword];
    if (value === undefined) continue;
    if (!TLS_VERSIONS.includes(value.toLowerCase())) throw invalidValue(keyword, value);
    // Node's default floor is TLS 1.2, like libpq's default ssl_min_protocol_version.
    if (!(keyword === "ssl_min_protocol_version" && value.toLowerCase() === "tlsv1.2")) {
      throw notSupported(keyword, value);
    }
  }
  for (const keyword of ["min_protocol_version", "max_protocol_version"]) {
    const value = params[keyword];
    if (value !== undefined && value !== "3.0") throw notSupported(keyword, value);
  }
}

/** libpq's pqParseIntParam: an int with optional surrounding whitespace. */
function parseIntParam(value: string, keyword: string): number {
  const match = /^[ \t\n\v\f\r]*([+-]?[0-9]+)[ \t\n\v\f\r]*$/.exec(value);
  const number = match ? Number(match[1]) : Number.NaN;
  if (!Number.isSafeInteger(number) || number < -0x8000_0000 || number > 0x7fff_ffff) {
    throw new UsageError(`invalid integer value "${value}" for connection option "${keyword}"`);
  }
  return number;
}

function splitList(value: string | undefined): string[] {
  return value === undefined ? [] : value.split(",");
}

function isUnixSocketPath(host: string): boolean {
  return host.startsWith("/");
}

/**
 * The default socket directory for `port`: the first candidate holding that port's socket, else the
 * first that exists, else the first candidate (so the connect error names a sensible path).
 */
function defaultSocketDir(candidates: readonly string[], port: number): string {
  const withSocket = candidates.find((dir) => existsSync(join(dir, `.s.PGSQL.${port}`)));
  return withSocket ?? candidates.find((dir) => existsSync(dir)) ?? candidates[0] ?? "/tmp";
}

function socketPathFor(dir: string, port: number): string {
  const path = `${dir}/.s.PGSQL.${port}`;
  if (Buffer.byteLength(path) >= UNIX_SOCKET_PATH_BUFFER) {
    throw new UsageError(
      `Unix-domain socket path "${path}" is too long (maximum ${UNIX_SOCKET_PATH_BUFFER - 1} bytes)`,
    );
  }
  return path;
}

function parsePort(text: string): number {
  if (text === "") return DEFAULT_PORT;
  const port = parseIntParam(text, "port");
  if (port < 1 || port > 65535) throw new UsageError(`invalid port number: "${text}"`);
  return port;
}

/** libpq's pqConnectOptions2 for hosts: one target per hostaddr (or host) list element. */
function buildTargets(params: ConnParams, socketDirs: readonly string[]): HostTarget[] {
  const hostaddrs = splitList(params.hostaddr);
  const hosts = splitList(params.host);
  const count = hostaddrs.length || hosts.length || 1;
  if (hostaddrs.length > 0 && hosts.length > 0 && hosts.length !== count) {
    throw new UsageError(`could not match ${hosts.length} host names to ${count} hostaddr values`);
  }
  const ports = splitList(params.port);
  if (ports.length > 1 && ports.length !== count) {
    throw new UsageError(`could not match ${ports.length} port numbers to ${count} hosts`);
  }

  const targets: HostTarget[] = [];
  for (let i = 0; i < count; i++) {
    const hostaddr = hostaddrs[i] ?? "";
    const host = hosts[i] ?? "";
    const port = parsePort(ports.length === 1 ? ports[0]! : (ports[i] ?? ""));
    if (hostaddr !== "") {
      targets.push({ host: host || hostaddr, hostaddr, port });
    } else if (host !== "") {
      targets.push(
        isUnixSocketPath(host) ? { host, port, socketPath: socketPathFor(host, port) } : { host, port },
      );
    } else {
      const dir = defaultSocketDir(socketDirs, port);
      targets.push({ host: dir, port, socketPath: socketPathFor(dir, port) });
    }
  }
  return targets;
}

function osUserName(): string {
  try {
    return userInfo().username;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    throw new UsageError(`could not look up local user ID ${process.getuid?.() ?? "?"}: ${reason}`);
  }
}

const SSL_MODES: readonly SslMode[] = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"];
const CHANNEL_BINDING_MODES: readonly ChannelBindingMode[] = ["disable", "prefer", "require"];

function defaultFile(homeDir: string, name: string): string | undefined {
  const path = join(homeDir, ".postgresql", name);
  return existsSync(path) ? path : undefined;
}

/**
 * Merges the sources with libpq precedence: forced > overrides > connection string > environment >
 * defaults, validates, and derives the per-host targets. Throws UsageError on invalid settings.
 */
export function resolveConnectionSettings(sources: SettingsSources): ConnectionSettings {
  const env = sources.env ?? process.env;
  const params = mergeSources(sources, env);
  rejectUnsupported(params);

  const homeDir = sources.homeDir ?? (env.HOME || homedir());
  const targets = buildTargets(params, sources.socketDirs ?? DEFAULT_SOCKET_DIRS);
  const user = params.user ?? sources.osUser ?? osUserName();

  const sslrootcert = params.sslrootcert ?? defaultFile(homeDir, "root.crt");
  // sslrootcert=system strengthens the *default* sslmode to verify-full (libpq 16+).
  const sslmodeText = params.sslmode ?? (sslrootcert === "system" ? "verify-full" : "prefer");
  if (!SSL_MODES.includes(sslmodeText as SslMode)) throw invalidValue("sslmode", sslmodeText);
  const sslmode = sslmodeText as SslMode;
  if (sslrootcert === "system" && sslmode !== "verify-full") {
    throw new UsageError(
      `weak sslmode "${sslmode}" may not be used with sslrootcert=system (use "verify-full")`,
    );
  }

  const channelBinding = params.channel_binding ?? "prefer";
  if (!CHANNEL_BINDING_MODES.includes(channelBinding as ChannelBindingMode)) {
    throw invalidValue("channel_binding", channelBinding);
  }

  let connectTimeoutMs: number | undefined;
  if (params.connect_timeout !== undefined) {
    const seconds = parseIntParam(params.connect_timeout, "connect_timeout");
    // libpq: negative means none, and 1 s is raised to 2 s so rounding cannot make it near-instant.
    if (seconds > 0) connectTimeoutMs = Math.max(seconds, 2) * 1000;
  }

  const settings: ConnectionSettings = {
    targets,
    user,
    passfile: params.passfile ?? join(homeDir, ".pgpass"),
    dbname: params.dbname ?? user,
    sslmode,
    sslsni: (params.sslsni ?? "1").startsWith("1"),
    channelBinding: channelBinding as ChannelBindingMode,
  };
  if (params.password !== undefined) settings.password = params.password;
  if (params.application_name !== undefined) settings.applicationName = params.application_name;
  if (params.fallback_application_name !== undefined) {
    settings.fallbackApplicationName = params.fallback_application_name;
  }
  if (params.options !== undefined) settings.options = params.options;
  if (params.replication !== undefined) settings.replication = params.replication;
  if (sslrootcert !== undefined) settings.sslrootcert = sslrootcert;
  const sslcert = params.sslcert ?? defaultFile(homeDir, "postgresql.crt");
  if (sslcert !== undefined) settings.sslcert = sslcert;
  const sslkey = params.sslkey ?? defaultFile(homeDir, "postgresql.key");
  if (sslkey !== undefined) settings.sslkey = sslkey;
  if (connectTimeoutMs !== undefined) settings.connectTimeoutMs = connectTimeoutMs;
  return settings;
}

/**
 * The sslmode libpq actually enforces. With a root certificate file present (given as sslrootcert,
 * or the default ~/.postgresql/root.crt), libpq verifies the server chain even under "require", so
 * "require" behaves like "verify-ca". A given sslrootcert that does not exist changes nothing.
 */
export function effectiveSslMode(s: ConnectionSettings): SslMode {
  if (s.sslmode !== "require" || s.sslrootcert === undefined) return s.sslmode;
  return s.sslrootcert === "system" || existsSync(s.sslrootcert) ? "verify-ca" : s.sslmode;
}

/** For logs: `host "db1", port 5432`, `host "db1" (10.0.0.5), port 5432` or `socket "/tmp/.s.PGSQL.5432"`. */
export function describeTarget(t: HostTarget): string {
  if (t.socketPath !== undefined) return `socket "${t.socketPath}"`;
  if (t.hostaddr !== undefined && t.hostaddr !== t.host)
    return `host "${t.host}" (${t.hostaddr}), port ${t.port}`;
  return `host "${t.host}", port ${t.port}`;
}

/** True when `host` names a socket directory pgwal (like libpq) uses by default; .pgpass calls it "localhost". */
export function isDefaultSocketDir(host: string): boolean {
  return DEFAULT_SOCKET_DIRS.includes(host);
}
