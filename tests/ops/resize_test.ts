import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { planResizeNearest } from "../../src/ops/resize.ts";
import { resizeNearestBackward, resizeNearestForward } from "../../src/reference/ops/resize.ts";
import {
  assertClose,
  assertUntouched,
  checkFiniteDifferences,
  dot,
  opContext,
  place,
  randomArray,
  readPlaced,
  rng,
  run,
} from "./_helpers.ts";

/** dx sums sy*sx = 4 dy values (plus the accumulated old value): a few f32 roundings, well under 1e-6 relative. */
const F32_FEW_ADDS_TOL = 1e-6;

for (const [sy, sx] of [[2, 2], [3, 2]]) {
  gpuTest(
    `planResizeNearest x${sy},${sx} matches the reference forward and backward on views`,
    async (device) => {
      const [n, c, h, w] = [2, 3, 5, 3];
      const rand = rng(51 + sy);
      const x = randomArray(n * c * h * w, rand);
      const dy = randomArray(x.length * sy * sx, rand);
      const dxOld = randomArray(x.length, rand);
      const out = [n, c, h * sy, w * sx];
      const X = place(device, [n, c, h, w], x, { offset: 1, batchStride: (c + 2) * h * w, fill: 8 });
      const Y = place(device, out, undefined, { offset: 3, batchStride: (c + 1) * h * w * sy * sx, fill: 7 });
      const DY = place(device, out, dy, { offset: 2 });
      const DX = place(device, [n, c, h, w], dxOld, { offset: 5, fill: 3 });
      const p = planResizeNearest(opContext(device), {
        x: X.view,
        y: Y.view,
        dy: DY.view,
        dx: DX.view,
        scaleY: sy,
        scaleX: sx,
        accumulate: true,
      });
      await run(device, [...p.forward, ...p.backward]);
      const y = await readPlaced(device, Y);
      assert.deepEqual([...y.inside], [...Float32Array.from(resizeNearestForward(x, n * c, h, w, sy, sx))]);
      assertUntouched(y.outside, "y");
      const dx = await readPlaced(device, DX);
      const want = resizeNearestBackward(dy, n * c, h, w, sy, sx).map((v, i) => v + dxOld[i]);
      assertClose(dx.inside, want, F32_FEW_ADDS_TOL, "dx");
      assertUntouched(dx.outside, "dx");
    },
  );
}

Deno.test("reference resize-nearest backward matches central differences", () => {
  const rand = rng(53);
  const x = randomArray(2 * 4 * 3, rand);
  const dy = randomArray(x.length * 4, rand);
  checkFiniteDifferences(
    x,
    resizeNearestBackward(dy, 2, 4, 3, 2, 2),
    () => dot(resizeNearestForward(x, 2, 4, 3, 2, 2), dy),
    "resize dx",
  );
});
