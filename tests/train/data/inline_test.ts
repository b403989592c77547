import assert from "node:assert/strict";
import { loadDataset } from "../../../src/train/data/dataset.ts";
import { writeInlineDataset } from "../../../src/train/data/inline.ts";
import { DatasetError } from "../../../src/train/data/problems.ts";

const SHAPES = new URL("../../fixtures/shapes/", import.meta.url).pathname;
const base64 = (bytes: Uint8Array) => btoa(Array.from(bytes, (b) => String.fromCharCode(b)).join(""));

Deno.test("writeInlineDataset writes JSON uploads in YOLO layout that loadDataset accepts", async () => {
  const dir = await Deno.makeTempDir();
  const png = base64(await Deno.readFile(`${SHAPES}images/shapes_0000.png`));
  await writeInlineDataset([{ name: "a.png", data: png, labels: [[1, 0.5, 0.5, 0.25, 0.25]] }], dir);
  const ds = await loadDataset(dir, { nc: 3 });
  assert.deepEqual(Array.from(ds.train[0].labels), [1, 0.5, 0.5, 0.25, 0.25]);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("writeInlineDataset lists every bad entry before writing anything", async () => {
  const dir = await Deno.makeTempDir();
  const err = await writeInlineDataset([
    { name: "../escape.png", data: "", labels: [] },
    { name: "ok.png", data: "!!!not base64!!!", labels: [] },
    { name: "rows.jpg", data: "", labels: [[0, 0.5, 0.5, 0.1]] },
    { name: "notes.txt", data: "", labels: [] },
  ], dir).catch((e) => e);
  assert.ok(err instanceof DatasetError);
  assert.deepEqual(err.problems.map((p) => [p.file, p.line]), [
    ["images[0] (../escape.png)", undefined],
    ["images[1] (ok.png)", undefined],
    ["images[2] (rows.jpg)", 1],
    ["images[3] (notes.txt)", undefined],
  ]);
  assert.deepEqual([...Deno.readDirSync(dir)], []);
  await Deno.remove(dir, { recursive: true });
});
