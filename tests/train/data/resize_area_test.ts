import assert from "node:assert/strict";
import { loadSquare } from "../../../src/train/data/images.ts";
import { resizeArea } from "../../../src/train/data/resize_area.ts";

/** An RGB image whose three channels all hold `values` (row-major). */
function grey(width: number, height: number, values: number[]) {
  return { width, height, data: Uint8Array.from(values.flatMap((v) => [v, v, v])) };
}
const channel0 = (img: { data: Uint8Array }) => Array.from(img.data.filter((_, i) => i % 3 === 0));

Deno.test("resizeArea 5 -> 2 weights overlaps 0.4, 0.4, 0.2 (computeResizeAreaTab)", () => {
  // dst 0 = 0.4·10 + 0.4·20 + 0.2·30 = 18; dst 1 = 0.2·30 + 0.4·40 + 0.4·50 = 42
  assert.deepEqual(channel0(resizeArea(grey(5, 1, [10, 20, 30, 40, 50]), 2, 1)), [18, 42]);
});

Deno.test("resizeArea integer factors: 2x2 rounds half up, 3x3 rounds sum/9 half to even", () => {
  // 2x2 blocks: (1+2+3+4+2)>>2 = 3 (2.5 rounds up); (0+0+1+1+2)>>2 = 1 (0.5 rounds up)
  assert.deepEqual(channel0(resizeArea(grey(4, 2, [1, 2, 0, 1, 3, 4, 0, 1]), 2, 1)), [3, 1]);
  // 3x3 block summing to 9·2.5 = 22.5 -> float32(22.5·(1/9)) = 2.5 -> cvRound 2
  const nine = [2, 3, 2, 3, 2, 3, 2, 3, 2.5 * 9 - 20];
  assert.deepEqual(channel0(resizeArea(grey(3, 3, nine), 1, 1)), [2]);
});

Deno.test("loadSquare without augment: INTER_AREA to ceil(w·r) × ceil(h·r), pad 114 at round(d − 0.1)", () => {
  const img = grey(200, 100, Array.from({ length: 200 * 100 }, (_, i) => (i % 200 < 101 ? 50 : 200)));
  const { square, box } = loadSquare(img, 64, false);
  assert.deepEqual(box, { size: 64, width: 64, height: 32, left: 0, top: 16 });
  const row = (y: number) => Array.from(square.data.subarray(y * 64, y * 64 + 64));
  assert.deepEqual(new Set(row(15)), new Set([114]));
  assert.deepEqual(new Set(row(48)), new Set([114]));
  // 3.125 source px per cell; cell 32 spans [100, 103.125): px 100 (50) weighs 0.32, px 101-103 (200) 0.68
  assert.deepEqual([row(16)[0], row(16)[31], row(16)[32], row(16)[33], row(16)[63]], [50, 50, 152, 200, 200]);
});
