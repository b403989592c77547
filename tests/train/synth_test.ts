import assert from "node:assert/strict";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { Rng } from "../../src/train/data/rng.ts";
import { SYNTH_CLASSES, synthImage, writeSynthDataset } from "../../src/train/synth.ts";

const FIXTURES = new URL("../fixtures/shapes/", import.meta.url).pathname;

Deno.test("synthImage labels are the painted shapes' exact extents", () => {
  const imgsz = 96;
  for (let seed = 0; seed < 5; seed++) {
    const { rgb, labels } = synthImage(imgsz, new Rng(seed));
    assert.ok(labels.length >= 1);
    const px = (x: number, y: number) =>
      Array.from(rgb.subarray((y * imgsz + x) * 3, (y * imgsz + x) * 3 + 3)).join();
    for (const [cls, cx, cy, w, h] of labels) {
      assert.ok(cls >= 0 && cls < SYNTH_CLASSES.length);
      const [x1, y1, x2, y2] = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2].map((v) =>
        Math.round(v * imgsz)
      );
      assert.ok(x1 >= 0 && y1 >= 0 && x2 <= imgsz && y2 <= imgsz);
      // every shape paints the middle of its bottom row; that colour must reach each edge of the box, not beyond
      const colour = px(Math.floor(cx * imgsz), y2 - 1);
      const row = (y: number) => Array.from({ length: x2 - x1 }, (_, i) => px(x1 + i, y)).includes(colour);
      const col = (x: number) => Array.from({ length: y2 - y1 }, (_, i) => px(x, y1 + i)).includes(colour);
      assert.deepEqual(
        [row(y1), row(y2 - 1), col(x1), col(x2 - 1)],
        [true, true, true, true],
        `seed ${seed}`,
      );
      const outside = [
        y1 > 0 && row(y1 - 1),
        y2 < imgsz && row(y2),
        x1 > 0 && col(x1 - 1),
        x2 < imgsz && col(x2),
      ];
      assert.deepEqual(outside, [false, false, false, false], `seed ${seed}`);
    }
  }
});

Deno.test("writeSynthDataset is byte-for-byte deterministic and reproduces tests/fixtures/shapes", async () => {
  const dir = await Deno.makeTempDir();
  const names = await writeSynthDataset(dir, { n: 8, imgsz: 128, seed: 1 });
  assert.equal(names.length, 8);
  for (const name of names) {
    assert.deepEqual(
      await Deno.readFile(`${dir}/images/${name}`),
      await Deno.readFile(`${FIXTURES}images/${name}`),
    );
    const label = name.replace(".png", ".txt");
    assert.equal(
      await Deno.readTextFile(`${dir}/labels/${label}`),
      await Deno.readTextFile(`${FIXTURES}labels/${label}`),
    );
  }
  const ds = await loadDataset(dir, { nc: SYNTH_CLASSES.length });
  assert.equal(ds.train.length, 8);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("synthImage draws shapes within the requested size range", () => {
  const imgsz = 128, minSize = 0.4, maxSize = 0.7;
  for (let seed = 0; seed < 20; seed++) {
    for (const [, , , w, h] of synthImage(imgsz, new Rng(seed), { minSize, maxSize }).labels) {
      // a shape's painted extent is its size, or one pixel less where its edge misses the pixel centres
      const side = Math.round(Math.max(w, h) * imgsz);
      assert.ok(
        side >= Math.round(minSize * imgsz) - 1 && side <= Math.round(maxSize * imgsz),
        `seed ${seed}`,
      );
    }
  }
});
