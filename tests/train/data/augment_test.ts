import assert from "node:assert/strict";
import { augmentHsv, hsvToRgb, rgbToHsv } from "../../../src/train/data/augment_color.ts";
import { flipLr } from "../../../src/train/data/flip.ts";
import { boxCandidate, randomPerspective } from "../../../src/train/data/augment_geometry.ts";
import { type AugmentHyp, SCRATCH_LOW_AUGMENT } from "../../../src/train/data/hyp.ts";
import type { PlanarImage } from "../../../src/train/data/images.ts";
import { loadMosaic } from "../../../src/train/data/mosaic.ts";
import { Rng } from "../../../src/train/data/rng.ts";

/** Box corners are warped in float64 and stored as float32: float32 rounding of values below 40 px. */
const BOX_TOL_PX = 1e-4;
const NO_AUGMENT: AugmentHyp = { ...SCRATCH_LOW_AUGMENT, translate: 0, scale: 0, fliplr: 0, mosaic: 0 };

function solid(width: number, height: number, rgb: number[]): PlanarImage {
  const data = new Uint8Array(3 * width * height);
  rgb.forEach((v, c) => data.fill(v, c * width * height, (c + 1) * width * height));
  return { width, height, data };
}

Deno.test("rgbToHsv/hsvToRgb follow OpenCV's 8-bit HSV (H in 0..179)", () => {
  assert.deepEqual(rgbToHsv(255, 0, 0), [0, 255, 255]);
  assert.deepEqual(rgbToHsv(0, 255, 0), [60, 255, 255]);
  assert.deepEqual(rgbToHsv(0, 0, 255), [120, 255, 255]);
  // v = 128, diff = 96: s = round(96·255/128) = 191, h = 32·180/(6·96) = 10
  assert.deepEqual(rgbToHsv(128, 64, 32), [10, 191, 128]);
  assert.deepEqual(hsvToRgb(10, 191, 128), [128, 64, 32]);
  assert.deepEqual(hsvToRgb(120, 255, 255), [0, 0, 255]);
});

Deno.test("augmentHsv scales value through a truncating LUT with gain U(-1, 1)·hsv_v + 1", () => {
  const img = solid(4, 4, [100, 100, 100]);
  augmentHsv(img, 0, 0, 0.4, new Rng(7));
  const replay = new Rng(7);
  const gains = [0, 0, 0.4].map((g) => replay.uniform(-1, 1) * g + 1);
  assert.deepEqual(new Set(img.data), new Set([Math.trunc(100 * gains[2])]));
  const untouched = solid(2, 2, [10, 20, 30]);
  augmentHsv(untouched, 0, 0, 0, new Rng(1));
  assert.deepEqual(untouched, solid(2, 2, [10, 20, 30]));
});

Deno.test("flipLr mirrors pixels and label x", () => {
  const img: PlanarImage = { width: 3, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]) };
  const labels = Float32Array.from([0, 0.25, 0.5, 0.1, 0.1]);
  flipLr(img, labels);
  assert.deepEqual(Array.from(img.data), [3, 2, 1, 6, 5, 4, 9, 8, 7]);
  assert.equal(labels[1], 0.75);
});

Deno.test("randomPerspective: identity hyps keep image and boxes; scale maps boxes about the centre", () => {
  const img = solid(40, 40, [50, 60, 70]);
  img.data[0] = 255;
  const rows = Float32Array.from([1, 10, 10, 20, 30]);
  const same = randomPerspective(img, rows, NO_AUGMENT, new Rng(1));
  assert.equal(same.img, img);
  assert.deepEqual(Array.from(same.rows), Array.from(rows));

  const hyp = { ...NO_AUGMENT, scale: 0.5 };
  const scaled = randomPerspective(solid(40, 40, [50, 60, 70]), rows, hyp, new Rng(2));
  const replay = new Rng(2);
  for (let i = 0; i < 3; i++) replay.random(); // perspective x, y and rotation draws come first
  const s = replay.uniform(0.5, 1.5);
  const expect = [10, 10, 20, 30].map((v) => Math.min(Math.max((v - 20) * s + 20, 0), 40));
  scaled.rows.subarray(1).forEach((v, k) =>
    assert.ok(Math.abs(v - expect[k]) < BOX_TOL_PX, `${scaled.rows} vs ${expect}`)
  );
  assert.equal(scaled.img.data[20 * 40 + 20], 50, "the centre stays put and keeps its colour");
});

Deno.test("boxCandidate drops slivers, boxes mostly cut away and extreme aspect ratios", () => {
  assert.ok(boxCandidate([0, 0, 10, 10], [0, 0, 10, 10]));
  assert.ok(!boxCandidate([0, 0, 10, 10], [0, 0, 2, 10]), "2 px wide");
  assert.ok(!boxCandidate([0, 0, 100, 100], [0, 0, 30, 30]), "9% of the area left");
  assert.ok(boxCandidate([0, 0, 990, 10], [0, 0, 990, 10]), "aspect ratio 99");
  assert.ok(!boxCandidate([0, 0, 400, 3], [0, 0, 400, 3]), "aspect ratio 133");
});

Deno.test("loadMosaic places four tiles around the centre with their labels, then crops to s×s", async () => {
  const s = 32;
  const colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0]];
  const tile = (i: number) =>
    Promise.resolve({ img: solid(s, s, colours[i]), labels: Float32Array.from([i % 3, 0.5, 0.5, 1, 1]) });
  const { img, rows } = await loadMosaic(0, 4, s, tile, NO_AUGMENT, new Rng(4));
  assert.deepEqual([img.width, img.height], [s, s]);
  assert.ok(rows.length >= 5 && rows.length <= 20);
  for (let o = 0; o < rows.length; o += 5) {
    const [x1, y1, x2, y2] = rows.subarray(o + 1, o + 5);
    assert.ok(x1 >= 0 && y1 >= 0 && x2 <= s && y2 <= s && x2 - x1 > 2 && y2 - y1 > 2);
    // each box covers a single tile's solid colour: its centre pixel must be one of the four tile colours
    const [cx, cy] = [Math.floor((x1 + x2) / 2), Math.floor((y1 + y2) / 2)];
    const px = [0, 1, 2].map((c) => img.data[c * s * s + cy * s + cx]);
    assert.ok(colours.some((col) => col.join() === px.join()), `box ${[x1, y1, x2, y2]} centre ${px}`);
  }
});
