// Zips for the fine-tune part of the dashboard test. The good one is synthesised shapes for the embedded default
// model (circle/square/triangle), so the job fine-tunes the model `deno task start` serves.
import { zipSync } from "fflate";
import { join, relative } from "node:path";
import { writeSynthDataset } from "../../src/train/synth.ts";

/** Every file under `dir`, keyed by its path relative to `dir`. */
async function readTree(dir: string, root = dir, files: Record<string, Uint8Array> = {}) {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) await readTree(path, root, files);
    else files[relative(root, path)] = await Deno.readFile(path);
  }
  return files;
}

/** Writes the zip to `path`: 8 synthesised 128 px training images and a val/ split of 4 (fixed seeds). */
export async function writeShapesDatasetZip(path: string): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-web-shapes-" });
  try {
    await writeSynthDataset(dir, { n: 8, imgsz: 128, seed: 21 });
    await writeSynthDataset(join(dir, "val"), { n: 4, imgsz: 128, seed: 22 });
    await Deno.writeFile(path, zipSync(await readTree(dir), { level: 0 }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Writes a zip the server must refuse: a class id past nc, a box outside the image, a non-image. */
export async function writeBadDatasetZip(path: string): Promise<void> {
  const enc = new TextEncoder();
  await Deno.writeFile(
    path,
    zipSync({
      "images/shapes.png": await Deno.readFile(
        new URL("../fixtures/shapes/images/shapes_0000.png", import.meta.url),
      ),
      "labels/shapes.txt": enc.encode("999 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n"),
      "images/broken.jpg": enc.encode("not a jpeg"),
      "labels/broken.txt": enc.encode("0 0.5 0.5 0.2 0.2\n"),
    }, { level: 0 }),
  );
}
