/**
 * A fleet job's dataset travels as one zip: packing and unpacking give back the same files, and an archive with
 * a path leaving the dataset directory is refused before any file is written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import { packDataset, unpackDataset } from "../../src/fleet/dataset_pack.ts";

async function files(dir: string, at = dir): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for await (const entry of Deno.readDir(at)) {
    const path = join(at, entry.name);
    if (entry.isDirectory) Object.assign(out, await files(dir, path));
    else out[path.slice(dir.length + 1)] = await Deno.readTextFile(path);
  }
  return out;
}

Deno.test("dataset pack: a round trip keeps every file; a path out of the directory is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-pack-" });
  try {
    const source = {
      "images/a.jpg": "jpeg bytes",
      "labels/a.txt": "0 0.5 0.5 0.2 0.2\n",
      "val/images/b.png": "png",
    };
    for (const [path, text] of Object.entries(source)) {
      await Deno.mkdir(join(dir, "src", path, ".."), { recursive: true });
      await Deno.writeTextFile(join(dir, "src", path), text);
    }
    await unpackDataset(await packDataset(join(dir, "src")), join(dir, "out"));
    assert.deepEqual(await files(join(dir, "out")), source);

    const x = new TextEncoder().encode("x");
    const hostile = zipSync({ "images/first.jpg": x, "../escaped.txt": x });
    await assert.rejects(() => unpackDataset(hostile, join(dir, "hostile")), TypeError);
    await assert.rejects(() => Deno.stat(join(dir, "escaped.txt")), Deno.errors.NotFound);
    await assert.rejects(() => Deno.stat(join(dir, "hostile")), Deno.errors.NotFound, "nothing was written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
