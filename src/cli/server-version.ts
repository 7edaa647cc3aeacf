/**
 * pg_receivewal's version rule, checked once after the first connection: the streaming message
 * format changed in 9.3, so older servers cannot be streamed from; servers newer than the
 * PostgreSQL release this CLI stands in for might work, but nobody has checked, so refuse.
 */
import { UsageError } from "../errors.js";
import { POSTGRES_COMPAT_VERSION } from "./version.js";

/** 9.3 as server_version_num / 100. */
export const MIN_STREAMING_SERVER_MAJOR = 903;
export const MIN_STREAMING_SERVER_VERSION_TEXT = "9.3";

/** server_version_num / 100 of the newest supported major: "18.1" → 1800. */
export function maxStreamingServerMajor(compatVersion: string = POSTGRES_COMPAT_VERSION): number {
  const major = Number(/^(\d+)/.exec(compatVersion)?.[1] ?? "0");
  return major * 100;
}

/**
 * Throws UsageError with pg_receivewal's message when the server is outside the supported range.
 * `versionNum` is server_version_num (e.g. 170004), `versionText` the server_version parameter.
 */
export function checkServerVersionForStreaming(
  versionNum: number,
  versionText: string | undefined,
  compatVersion: string = POSTGRES_COMPAT_VERSION,
): void {
  const serverMajor = Math.floor(versionNum / 100);
  const shown = versionText ?? "'unknown'";
  if (serverMajor < MIN_STREAMING_SERVER_MAJOR) {
    throw new UsageError(
      `incompatible server version ${shown}; client does not support streaming from server versions older than ${MIN_STREAMING_SERVER_VERSION_TEXT}`,
    );
  }
  if (serverMajor > maxStreamingServerMajor(compatVersion)) {
    throw new UsageError(
      `incompatible server version ${shown}; client does not support streaming from server versions newer than ${compatVersion}`,
    );
  }
}
