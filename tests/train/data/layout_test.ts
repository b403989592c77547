import assert from "node:assert/strict";
import { join } from "node:path";
import { holdOut, readLayout, type SampleRef } from "../../../src/train/data/layout.ts";
import type { DatasetProblem } from "../../../src/train/data/problems.ts";

async function tree(files: string[]): Promise<string> {
  const dir = await Deno.makeTempDir();
  for (const f of files) {
    await Deno.mkdir(join(dir, f, ".."), { recursive: true });
    await Deno.writeTextFile(join(dir, f), "");
  }
  return dir;
}

Deno.test("readLayout pairs images with labels by stem, in sorted order, and flags strays", async () => {
  const dir = await tree([
    "wrapped/images/b.png",
    "wrapped/images/a.jpg",
    "wrapped/images/sub/c.PNG",
    "wrapped/images/notes.bmp",
    "wrapped/labels/a.txt",
    "wrapped/labels/sub/c.txt",
    "wrapped/labels/orphan.txt",
    "wrapped/images/.DS_Store",
    "wrapped/stray.jpg",
    "wrapped/data.yaml",
  ]);
  const problems: DatasetProblem[] = [];
  const layout = await readLayout(dir, 0, problems);
  assert.equal(layout.root, join(dir, "wrapped"));
  assert.deepEqual(layout.train.map((s) => [s.name, s.labelPath !== null]), [
    ["images/a.jpg", true],
    ["images/b.png", false],
    ["images/sub/c.PNG", true],
  ]);
  assert.deepEqual(problems.map((p) => p.file).sort(), [
    "images/notes.bmp",
    "labels/orphan.txt",
    "stray.jpg",
  ]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("readLayout takes an explicit val/ split, else holds out valFraction evenly by name", async () => {
  const dir = await tree(["images/a.png", "images/b.png", "val/images/v.png", "val/labels/v.txt"]);
  const explicit = await readLayout(dir, 0.5, []);
  assert.deepEqual(explicit.train.map((s) => s.name), ["images/a.png", "images/b.png"]);
  assert.deepEqual(explicit.val.map((s) => [s.name, s.labelPath !== null]), [["val/images/v.png", true]]);
  await Deno.remove(dir, { recursive: true });

  const split = await tree(["images/train/a.png", "images/val/b.png", "labels/val/b.txt"]);
  const ultra = await readLayout(split, 0, []);
  assert.deepEqual([ultra.train.map((s) => s.name), ultra.val.map((s) => s.name)], [
    ["images/train/a.png"],
    ["images/val/b.png"],
  ]);
  await Deno.remove(split, { recursive: true });
});

Deno.test("holdOut spreads the held-out images over the sorted list and never takes all", () => {
  const refs: SampleRef[] = Array.from(
    { length: 10 },
    (_, i) => ({ name: `${i}`, imagePath: "", labelPath: null }),
  );
  const [train, val] = holdOut(refs, 0.2);
  assert.deepEqual(val.map((s) => s.name), ["4", "9"]);
  assert.equal(train.length, 8);
  assert.deepEqual(holdOut(refs.slice(0, 2), 0.9)[1].length, 1);
  assert.deepEqual(holdOut(refs.slice(0, 1), 0.5)[1], []);
});
