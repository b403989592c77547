/**
 * Worker side of the archive fuzz test: unpacks each case it is sent with the server's unpack code
 * (archive_unpack.ts, what the production worker runs) and answers how it ended. Running off the test's thread
 * lets the test put a deadline on every case: a reader that loops shows as a timeout naming the seed.
 */
import type { ArchiveLimits } from "../../../src/train/data/archive.ts";
import { unpackArchiveFile } from "../../../src/train/data/archive_unpack.ts";
import { DatasetError } from "../../../src/train/data/problems.ts";

export interface FuzzCase {
  id: number;
  archive: string;
  dest: string;
  limits: ArchiveLimits;
}
export type FuzzOutcome =
  | { id: number; kind: "ok"; files: string[] }
  | { id: number; kind: "invalid_dataset"; problems: number }
  | { id: number; kind: "other"; error: string };

const port = self as unknown as {
  postMessage(message: FuzzOutcome): void;
  onmessage: ((e: MessageEvent<FuzzCase>) => void) | null;
};

port.onmessage = ({ data: { id, archive, dest, limits } }) => {
  try {
    port.postMessage({ id, kind: "ok", files: unpackArchiveFile(archive, dest, limits) });
  } catch (err) {
    port.postMessage(
      err instanceof DatasetError
        ? { id, kind: "invalid_dataset", problems: err.problems.length }
        : { id, kind: "other", error: (err as Error).stack ?? String(err) },
    );
  }
};
