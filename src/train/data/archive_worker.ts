/**
 * Web Worker entry of {@link extractArchive}: unpacks one archive file (see archive_unpack.ts) on this thread, so
 * inflating a large or hostile upload never stalls the server's event loop, and answers with the files written
 * or the dataset problems found.
 * @module
 */
import { unpackArchiveFile } from "./archive_unpack.ts";
import { DatasetError } from "./problems.ts";
import type { UnpackReply, UnpackRequest } from "./archive.ts";

/** The worker side of the message channel (the project's lib is deno.window, so `self` is typed as a window). */
const port = self as unknown as {
  postMessage(message: UnpackReply): void;
  onmessage: ((e: MessageEvent<UnpackRequest>) => void) | null;
};

port.onmessage = (e) => {
  const { archive, dest, limits, cancel } = e.data;
  try {
    const cancelled = () => Atomics.load(cancel, 0) !== 0;
    port.postMessage({ ok: true, files: unpackArchiveFile(archive, dest, limits, cancelled) });
  } catch (err) {
    port.postMessage(
      err instanceof DatasetError
        ? { ok: false, problems: [...err.problems] }
        : { ok: false, message: `unpacking failed: ${(err as Error).message}` },
    );
  }
};
