import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { planMaxPool } from "../../src/ops/maxpool.ts";
import {
  maxPoolBackward,
  maxPoolForward,
  poolOutSize,
  type PoolShape,
} from "../../src/reference/ops/maxpool.ts";
import {
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

/** Max pooling only selects and sums: outputs are exact copies, and each dx element sums at most k*k dy values
 * (plus the accumulated old value) in the same order as the reference, so f32 rounding of those few adds is all
 * the difference: relative 1e-6 of the element's magnitude. */
const F32_FEW_ADDS_TOL = 1e-6;

const CASES: [string, PoolShape][] = [
  ["SPPF k5 s1 p2", { n: 2, c: 3, h: 7, w: 6, k: 5, stride: 1, pad: 2 }],
  ["k3 s2 p1", { n: 2, c: 2, h: 9, w: 8, k: 3, stride: 2, pad: 1 }],
  ["k2 s2 p0", { n: 1, c: 3, h: 6, w: 5, k: 2, stride: 2, pad: 0 }],
];

for (const [name, s] of CASES) {
  for (const plateaus of [false, true]) {
    const what = plateaus ? "on plateaus (ties go to the first maximum)" : "on distinct values";
    gpuTest(`planMaxPool ${name} matches the reference forward and backward ${what}`, async (device) => {
      const rand = rng(plateaus ? 41 : 42);
      // Plateaus: values from {-1, 0, 1} only (and a constant channel), so most windows hold several maxima.
      const x = randomArray(s.n * s.c * s.h * s.w, plateaus ? () => Math.round(rand()) : rand);
      if (plateaus) x.fill(0.5, 0, s.h * s.w);
      const [ho, wo] = poolOutSize(s);
      const dy = randomArray(s.n * s.c * ho * wo, rand);
      const dxOld = randomArray(x.length, rand);
      const X = place(device, [s.n, s.c, s.h, s.w], x, {
        offset: 2,
        batchStride: (s.c + 1) * s.h * s.w,
        fill: 9,
      });
      const Y = place(device, [s.n, s.c, ho, wo], undefined, { offset: 1, batchStride: (s.c + 2) * ho * wo });
      const DY = place(device, [s.n, s.c, ho, wo], dy, { offset: 3 });
      const DX = place(device, [s.n, s.c, s.h, s.w], dxOld, {
        offset: 1,
        batchStride: (s.c + 1) * s.h * s.w,
      });
      const p = planMaxPool(opContext(device), {
        x: X.view,
        y: Y.view,
        dy: DY.view,
        dx: DX.view,
        kernel: s.k,
        stride: s.stride,
        pad: s.pad,
        accumulate: true,
      });
      await run(device, [...p.forward, ...p.backward]);
      const y = await readPlaced(device, Y);
      assert.deepEqual([...y.inside], [...Float32Array.from(maxPoolForward(s, Float32Array.from(x)).y)]);
      assertUntouched(y.outside, "y");
      const want = maxPoolBackward(s, Float32Array.from(x), Float32Array.from(dy));
      const dx = await readPlaced(device, DX);
      dx.inside.forEach((v, i) => {
        const expect = want[i] + Math.fround(dxOld[i]);
        assert.ok(
          Math.abs(v - expect) <= F32_FEW_ADDS_TOL * Math.max(1, Math.abs(expect)),
          `dx[${i}] = ${v}, expected ${expect}`,
        );
      });
      assertUntouched(dx.outside, "dx");
    });
  }
}

Deno.test("reference max-pool routes a plateau's gradient to its first element only", () => {
  const s: PoolShape = { n: 1, c: 1, h: 1, w: 4, k: 3, stride: 1, pad: 1 };
  // Windows (pad = -inf): [-inf, 2, 2] -> x0; [2, 2, 1] -> x0; [2, 1, 2] -> x1; [1, 2, -inf] -> x3.
  const dx = maxPoolBackward(s, [2, 2, 1, 2], [1, 10, 100, 1000]);
  assert.deepEqual([...dx], [1 + 10, 100, 0, 1000]);
});

Deno.test("reference max-pool backward matches central differences on distinct values", () => {
  for (const [name, s] of CASES) {
    const rand = rng(43);
    const x = randomArray(s.n * s.c * s.h * s.w, rand);
    const [ho, wo] = poolOutSize(s);
    const dy = randomArray(s.n * s.c * ho * wo, rand);
    checkFiniteDifferences(
      x,
      maxPoolBackward(s, x, dy),
      () => dot(maxPoolForward(s, x).y, dy),
      `maxpool ${name}`,
    );
  }
});
