// One test recipe shared by the elementwise activations: GPU forward and backward against the float64 reference
// on views (offsets, channel-slice batch strides), dx overwritten and accumulated, and the reference derivative
// against central differences.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import type { UnaryArgs } from "../../src/ops/unary.ts";
import type { OpContext, OpPlan } from "../../src/ops/types.ts";
import { type Activation, applyBackward, applyForward } from "../../src/reference/ops/activations.ts";
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

/** One f32 evaluation of exp/divide/multiply: WGSL allows exp 3 + 2|x| ULP, so for |x| <= 4 about 11 ULP
 * (~1.3e-6 relative) plus a few roundings of the surrounding arithmetic. */
export const F32_ELEMENTWISE_TOL = 4e-6;

/** View placements: odd offsets and strides (f32 lanes), and 4-aligned ones (vec4f lanes where an op takes
 * them; `vec4Entries` says whether it should then pick them). */
const LAYOUTS = [
  { what: "odd views", shape: [2, 5, 3, 7], offsets: [3, 5, 1, 2], pads: [9, 2, 0, 4] },
  { what: "4-aligned views", shape: [2, 4, 3, 5], offsets: [4, 8, 0, 12], pads: [8, 4, 0, 12] },
];

export function unaryTests(
  name: string,
  plan: (ctx: OpContext, a: UnaryArgs) => OpPlan,
  act: Activation,
  vec4Entries = false,
): void {
  for (const { what, shape, offsets, pads } of LAYOUTS) {
    const per = shape[1] * shape[2] * shape[3];
    const opt = (i: number, fill: number) => ({ offset: offsets[i], batchStride: per + pads[i], fill });
    for (const accumulate of [false, true]) {
      const mode = accumulate ? "accumulated" : "overwritten";
      gpuTest(`${name} forward and backward match the reference on ${what} (dx ${mode})`, async (device) => {
        const rand = rng(accumulate ? 11 : 12);
        // Inputs spread over [-4, 4] so both tails and the middle of the curve are exercised.
        const x = randomArray(2 * per, () => 4 * rand());
        const dy = randomArray(x.length, rand);
        const dxOld = randomArray(x.length, rand);
        const X = place(device, shape, x, opt(0, 7));
        const Y = place(device, shape, undefined, opt(1, 6));
        const DY = place(device, shape, dy, opt(2, 5));
        const DX = place(device, shape, dxOld, opt(3, 4));
        const p = plan(opContext(device), { x: X.view, y: Y.view, dy: DY.view, dx: DX.view, accumulate });
        const entry = p.forward[0].pipeline.label.split(":").pop();
        const lane = vec4Entries && what.startsWith("4") ? "vec4f" : "f32";
        assert.equal(entry, `forward (${lane})`, "entry point and lane type");
        await run(device, [...p.forward, ...p.backward]);
        const y = await readPlaced(device, Y);
        assertClose(y.inside, applyForward(act, x), F32_ELEMENTWISE_TOL, `${name} y`);
        assertUntouched(y.outside, `${name} y`);
        const want = applyBackward(act, x, dy).map((v, i) => v + (accumulate ? dxOld[i] : 0));
        const dx = await readPlaced(device, DX);
        assertClose(dx.inside, want, F32_ELEMENTWISE_TOL, `${name} dx`);
        assertUntouched(dx.outside, `${name} dx`);
      });
    }
  }
  Deno.test(`${name} reference derivative matches central differences`, () => {
    const rand = rng(5);
    // Away from 0, where relu-like kinks make a central difference meaningless.
    const x = randomArray(40, () => {
      const v = 4 * rand();
      return Math.abs(v) < 0.01 ? 0.5 : v;
    });
    const dy = randomArray(x.length, rand);
    checkFiniteDifferences(
      x,
      applyBackward(act, x, dy),
      () => dot(applyForward(act, x), dy),
      `${name} dx`,
      40,
    );
  });
}
