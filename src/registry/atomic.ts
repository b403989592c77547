/**
 * Crash-safe file primitives: content reaches the disk (fsync) before a rename publishes it, and the directory
 * is fsynced after the rename so the new name itself survives a power cut. A reader therefore sees the old file
 * or the complete new one, never a prefix.
 * @module
 */
import { dirname } from "node:path";

/** Write `data` to a new file and fsync it. Fails if the file exists. */
export async function writeSynced(path: string, data: Uint8Array): Promise<void> {
  const file = await Deno.open(path, { write: true, createNew: true });
  try {
    for (let off = 0; off < data.length;) off += await file.write(data.subarray(off));
    await file.sync();
  } finally {
    file.close();
  }
}

/** fsync a directory so renames and creations inside it are durable. */
export async function syncDir(path: string): Promise<void> {
  const dir = await Deno.open(path, { read: true });
  try {
    await dir.sync();
  } finally {
    dir.close();
  }
}

/** Replace `path` atomically: temp file beside it, fsync, rename over, fsync the directory. */
export async function writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    await writeSynced(tmp, data);
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dirname(path));
}

/** JSON variant of {@link writeFileAtomic}. */
export function writeJsonAtomic(path: string, value: unknown): Promise<void> {
  return writeFileAtomic(path, new TextEncoder().encode(JSON.stringify(value, null, 2) + "\n"));
}
