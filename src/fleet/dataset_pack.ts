/**
 * A job's dataset directory as one uncompressed zip (images are compressed already) for the fleet's object store,
 * and back. Unpacking checks every path the way an upload's are checked, before writing any, so a bad archive
 * writes nothing.
 * @module
 */
import { join, relative } from "node:path";
import { unzipSync, zipSync } from "fflate";
import { checkDatasetPath } from "../jobs/store.ts";

export async function packDataset(dir: string): Promise<Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) await walk(path);
      else if (entry.isFile) files[relative(dir, path)] = await Deno.readFile(path);
    }
  };
  await walk(dir);
  return zipSync(files, { level: 0 });
}

export async function unpackDataset(zip: Uint8Array, dir: string): Promise<void> {
  // Every path is checked before the first file is written.
  const entries = Object.entries(unzipSync(zip)).filter(([path]) => !path.endsWith("/"))
    .map(([path, data]) => [join(dir, checkDatasetPath(path)), data] as const);
  for (const [target, data] of entries) {
    await Deno.mkdir(join(target, ".."), { recursive: true });
    await Deno.writeFile(target, data);
  }
}
