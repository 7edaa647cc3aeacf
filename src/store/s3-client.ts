/**
 * The S3 client, configured as AWS tools read their settings: credentials from the SDK's standard
 * provider chain (environment, AWS_PROFILE with ~/.aws/credentials and config, web-identity tokens,
 * container and instance metadata), the region from AWS_REGION or the profile, the endpoint from
 * --s3-endpoint, AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL. The SDK is loaded with import() only here,
 * so a receiver without an s3:// target never pays for it in memory.
 */
import type { S3Client } from "@aws-sdk/client-s3";
import { UsageError } from "../errors.js";

export type S3Addressing = "path" | "virtual";

export interface S3ClientSettings {
  /** --s3-endpoint; absent = AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, else AWS's own endpoints. */
  endpoint?: string;
  /** --s3-addressing-style; absent = path-style with a custom endpoint (S3-compatible stores), else virtual-host. */
  addressing?: S3Addressing;
  /** Attempts per request inside the SDK (the uploader retries on its own, so it asks for 1). */
  maxAttempts?: number;
  /** Fixed keys instead of the provider chain (library callers, tests). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

export interface ResolvedS3Settings {
  endpoint: string | undefined;
  forcePathStyle: boolean;
  /** Only set when the environment names none and a custom endpoint is used (such stores ignore it). */
  region: string | undefined;
}

/** Region S3-compatible stores expect when none is configured (they do not route by region). */
const DEFAULT_CUSTOM_ENDPOINT_REGION = "us-east-1";

/** Pure: what the client will be built with. */
export function resolveS3Settings(settings: S3ClientSettings, env: NodeJS.ProcessEnv): ResolvedS3Settings {
  const endpoint =
    nonEmpty(settings.endpoint) ?? nonEmpty(env.AWS_ENDPOINT_URL_S3) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  if (endpoint !== undefined && !/^https?:\/\/[^/\s]+\/?$/.test(endpoint)) {
    throw new UsageError(`invalid S3 endpoint "${endpoint}": expected http(s)://HOST[:PORT]`);
  }
  const forcePathStyle =
    settings.addressing === undefined ? endpoint !== undefined : settings.addressing === "path";
  const configuredRegion = nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION);
  const region =
    configuredRegion ??
    (endpoint !== undefined && nonEmpty(env.AWS_PROFILE) === undefined
      ? DEFAULT_CUSTOM_ENDPOINT_REGION
      : undefined);
  return { endpoint, forcePathStyle, region };
}

export async function createS3Client(settings: S3ClientSettings, env: NodeJS.ProcessEnv): Promise<S3Client> {
  const resolved = resolveS3Settings(settings, env);
  // The SDK otherwise prints a multi-line notice about its future Node.js support on every start.
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
  const { S3Client } = await import("@aws-sdk/client-s3");
  return new S3Client({
    ...(resolved.region !== undefined ? { region: resolved.region } : {}),
    ...(resolved.endpoint !== undefined ? { endpoint: resolved.endpoint } : {}),
    forcePathStyle: resolved.forcePathStyle,
    ...(settings.credentials !== undefined ? { credentials: settings.credentials } : {}),
    // S3-compatible stores reject aws-chunked bodies with checksum trailers and do not check CRCs:
    // integrity comes from the Content-MD5 sent with every PUT.
    requestChecksumCalculation: "WHEN_REQUIRED",
    responseChecksumValidation: "WHEN_REQUIRED",
    maxAttempts: settings.maxAttempts ?? 3,
    // pgwal reports failures itself, as one line each; the SDK would print to the console.
    logger: SILENT_SDK_LOGGER,
    requestHandler: { connectionTimeout: 10_000, requestTimeout: 120_000 },
  });
}

const ignore = (): void => undefined;
const SILENT_SDK_LOGGER = { trace: ignore, debug: ignore, info: ignore, warn: ignore, error: ignore };

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === "" ? undefined : value.trim();
}
