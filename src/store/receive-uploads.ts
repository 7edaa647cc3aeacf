/**
 * Wiring of `pgwal receive --target s3://…`: the store is opened (and its keys and bucket checked)
 * before streaming starts, and the uploader follows the receiver's events, like the segment hooks.
 */
import path from "node:path";
import type { ReceiveArgs } from "../cli/options.js";
import type { ReceiverLogger } from "../receiver/logger.js";
import type { WalReceiver } from "../receiver/receiver.js";
import { archiveSuffix } from "../wal/compression.js";
import { openObjectStore } from "./open-store.js";
import { defaultUploadStateFile, WalUploader } from "./wal-uploader.js";

/** Opens the target and fails with one clear line when the keys, the bucket or the permissions are wrong. */
export async function prepareUploads(
  args: ReceiveArgs & { target: string; directory: string },
  logger: ReceiverLogger,
  env: NodeJS.ProcessEnv,
): Promise<WalUploader> {
  // The uploader retries on its own, with backoff; a streamed body cannot be replayed by the SDK.
  const store = await openObjectStore(
    args.target,
    { endpoint: args.s3Endpoint, addressing: args.s3Addressing, maxAttempts: 1 },
    env,
  );
  try {
    await store.checkAccess();
  } catch (error) {
    store.destroy();
    throw error;
  }
  return new WalUploader({
    store,
    directory: args.directory,
    stateFile: args.uploadStateFile ?? (await defaultUploadStateFile(args.directory, store.url, env)),
    archiveSuffix: archiveSuffix(args.compression.method),
    logger,
    concurrency: args.uploadConcurrency,
    partialIntervalMs: args.partialUploadIntervalSeconds * 1000,
  });
}

/** Feeds the uploader the receiver's "file completed" and "flushed" events; `onFatal` gets what no retry fixes. */
export function followReceiver(
  uploader: WalUploader,
  receiver: WalReceiver,
  onFatal: (error: unknown) => void,
): void {
  receiver.on("connected", (event) => {
    uploader.start(event.segmentSize, event.systemId).catch(onFatal);
  });
  receiver.on("segment", (event) => uploader.enqueue(path.basename(event.path)));
  receiver.on("history", (event) => uploader.enqueue(path.basename(event.path)));
  receiver.on("flushed", (event) => uploader.noteFlushed(event.lsn, event.timeline));
  uploader.on("fatal", onFatal);
}
