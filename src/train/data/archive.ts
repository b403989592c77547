/**
 * Unpacks an uploaded dataset archive (.zip, .tar.gz/.tgz or plain .tar, recognised by magic bytes) from a file
 * into a directory, in a Web Worker: inflating runs off the event loop, so detect and health keep answering
 * while a large or hostile upload is unpacked. Entries are written only under that directory (absolute paths,
 * `..`, links and device files are refused) and the real unpacked bytes and the entry count are capped as they
 * are written, so a decompression bomb stops at the cap; memory stays bounded whatever the archive holds.
 */
import type { ArchiveLimits } from "./archive_target.ts";
import { DatasetError, type DatasetProblem } from "./problems.ts";
import { spawnWorker } from "../../workers/spawn.ts";

export type { ArchiveLimits } from "./archive_target.ts";

export const DEFAULT_ARCHIVE_LIMITS: ArchiveLimits = { maxBytes: 1 << 30, maxEntries: 100_000 };

/** What the main thread asks of the unpack worker, and what it answers. */
export interface UnpackRequest {
  archive: string;
  dest: string;
  limits: ArchiveLimits;
  /** Set to 1 by the main thread when the unpack is aborted; the worker checks it at every entry and write. */
  cancel: Int32Array<SharedArrayBuffer>;
}
export type UnpackReply =
  | { ok: true; files: string[] }
  | { ok: false; problems: DatasetProblem[] }
  | { ok: false; message: string };

const WORKER_URL = new URL("./archive_worker.ts", import.meta.url);
/**
 * How long an aborted unpack waits for its worker to see the cancel flag and stop before terminating it anyway.
 * `Worker.terminate()` alone does not stop a worker busy in JavaScript (Deno 2.9: a terminated worker inflating a
 * 4 GiB archive kept a core busy ~19 s), so the worker stops itself; it checks the flag at least every 4 MB written.
 */
const CANCEL_GRACE_MS = 2_000;

/**
 * Unpacks the archive file `archive` under `dest` (created if needed); returns the written paths relative to
 * `dest`, sorted. A bad archive throws a DatasetError listing every problem found, and leaves `dest` empty.
 * Aborting `signal` rejects at once with its reason; the worker stops writing (it checks a shared cancel flag)
 * and what it wrote is removed before the promise settles.
 */
export async function extractArchive(
  archive: string,
  dest: string,
  limits: ArchiveLimits = DEFAULT_ARCHIVE_LIMITS,
  signal?: AbortSignal,
): Promise<string[]> {
  signal?.throwIfAborted();
  await Deno.mkdir(dest, { recursive: true });
  const worker = spawnWorker(WORKER_URL);
  const reply = Promise.withResolvers<UnpackReply>();
  // Settles when the worker has stopped on its own: it answered or failed.
  const stopped = Promise.withResolvers<void>();
  const cancel = new Int32Array(new SharedArrayBuffer(4));
  const abort = () => {
    Atomics.store(cancel, 0, 1);
    reply.reject(signal?.reason);
  };
  worker.onmessage = (e: MessageEvent<UnpackReply>) => {
    stopped.resolve();
    reply.resolve(e.data);
  };
  worker.onerror = (e) => {
    e.preventDefault();
    stopped.resolve();
    reply.reject(new Error(`archive worker failed: ${e.message}`));
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    worker.postMessage({ archive, dest, limits, cancel } satisfies UnpackRequest);
    const result = await reply.promise;
    if (result.ok) return result.files;
    throw "problems" in result ? new DatasetError(result.problems) : new Error(result.message);
  } catch (err) {
    // Removing the files while the worker still writes would leave some behind: wait until it stopped.
    // (AbortSignal.timeout's timer does not keep the process alive, so nothing is left to clear.)
    const grace = AbortSignal.timeout(CANCEL_GRACE_MS);
    await Promise.race([stopped.promise, new Promise((resolve) => grace.addEventListener("abort", resolve))]);
    worker.terminate();
    await emptyDir(dest);
    throw err;
  } finally {
    signal?.removeEventListener("abort", abort);
    worker.terminate();
  }
}

/** Removes what a failed unpack wrote, keeping the (caller's) directory itself. */
async function emptyDir(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    await Deno.remove(`${dir}/${entry.name}`, { recursive: true });
  }
}
