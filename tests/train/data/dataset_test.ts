import assert from "node:assert/strict";
import { join } from "node:path";
import { loadDataset } from "../../../src/train/data/dataset.ts";
import { DatasetError } from "../../../src/train/data/problems.ts";

const SHAPES = new URL("../../fixtures/shapes/", import.meta.url).pathname;

Deno.test("loadDataset validates the shapes fixture and holds out val_fraction", async () => {
  const ds = await loadDataset(SHAPES, { nc: 3, valFraction: 0.25 });
  assert.deepEqual([ds.train.length, ds.val.length], [6, 2]);
  for (const s of [...ds.train, ...ds.val]) {
    assert.deepEqual([s.width, s.height], [128, 128]);
    assert.ok(s.labels.length > 0 && s.labels.length % 5 === 0, s.name);
  }
});

Deno.test("loadDataset collects every problem with its file into one DatasetError", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(join(dir, "images"));
  await Deno.mkdir(join(dir, "labels"));
  await Deno.copyFile(join(SHAPES, "images/shapes_0000.png"), join(dir, "images/good.png"));
  await Deno.writeTextFile(join(dir, "labels/good.txt"), "0 0.5 0.5 0.2 0.2\n");
  await Deno.writeTextFile(join(dir, "images/broken.png"), "not a png at all");
  await Deno.copyFile(join(SHAPES, "images/shapes_0001.png"), join(dir, "images/badlabels.png"));
  await Deno.writeTextFile(
    join(dir, "labels/badlabels.txt"),
    "0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n1 1.5 0.5 0.1 0.1\n",
  );
  const err = await loadDataset(dir, { nc: 3 }).catch((e) => e);
  assert.ok(err instanceof DatasetError, String(err));
  assert.deepEqual(err.problems.map((p) => [p.file, p.line]), [
    ["labels/badlabels.txt", 2],
    ["labels/badlabels.txt", 3],
    ["images/broken.png", undefined],
  ]);
  assert.match(err.message, /3 problems/);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("loadDataset reports an empty dataset", async () => {
  const dir = await Deno.makeTempDir();
  const err = await loadDataset(dir, { nc: 3 }).catch((e) => e);
  assert.ok(err instanceof DatasetError);
  assert.match(err.problems[0].message, /empty dataset/);
  await Deno.remove(dir, { recursive: true });
});
