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
}
export type UnpackReply =
  | { ok: true; files: string[] }
  | { ok: false; problems: DatasetProblem[] }
  | { ok: false; message: string };

const WORKER_URL = new URL("./archive_worker.ts", import.meta.url);

/**
 * Unpacks the archive file `archive` under `dest` (created if needed); returns the written paths relative to
 * `dest`, sorted. A bad archive throws a DatasetError listing every problem found, and leaves `dest` empty.
 * Aborting `signal` stops the worker at once.
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
  const abort = () => reply.reject(signal?.reason);
  worker.onmessage = (e: MessageEvent<UnpackReply>) => reply.resolve(e.data);
  worker.onerror = (e) => {
    e.preventDefault();
    reply.reject(new Error(`archive worker failed: ${e.message}`));
  };
  signal?.addEventListener("abort", abort, { once: true });
  try {
    worker.postMessage({ archive, dest, limits } satisfies UnpackRequest);
    const result = await reply.promise;
    if (result.ok) return result.files;
    throw "problems" in result ? new DatasetError(result.problems) : new Error(result.message);
  } catch (err) {
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
