// One test recipe shared by the same-shape binary ops: GPU forward and backward against the float64 reference on
// views, one gradient overwritten and the other accumulated, and the reference gradients against central differences.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import type { BinaryArgs } from "../../src/ops/binary.ts";
import type { OpContext, OpPlan } from "../../src/ops/types.ts";
import { binaryBackward, binaryForward, type BinaryOp } from "../../src/reference/ops/binary.ts";
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

/** One f32 add or multiply (plus one add when accumulating): at most a couple of roundings, ~2.4e-7 relative. */
const F32_ONE_OP_TOL = 3e-7;

/** View placements: offsets of a, b, c, dc, da, db and the extra batch-stride padding of a, c, da. Unaligned ones
 * run the module compiled with f32 lanes, 4-aligned ones (per-item count, offsets, batch strides) with vec4f. */
const LAYOUTS = [
  {
    what: "unaligned views",
    shape: [2, 3, 5, 7],
    offsets: [3, 1, 2, 4, 1, 6],
    batchPad: [5, 3, 1],
    lane: "f32",
  },
  {
    what: "4-aligned views",
    shape: [2, 4, 3, 4],
    offsets: [4, 8, 4, 0, 4, 8],
    batchPad: [4, 8, 4],
    lane: "vec4f",
  },
];

export function binaryTests(
  name: string,
  plan: (ctx: OpContext, a: BinaryArgs) => OpPlan,
  op: BinaryOp,
): void {
  for (const layout of LAYOUTS) {
    const { shape } = layout;
    const per = shape[1] * shape[2] * shape[3];
    const [oA, oB, oC, oDC, oDA, oDB] = layout.offsets;
    const pad = layout.batchPad;
    gpuTest(
      `${name} forward and backward match the reference (da overwritten, db accumulated) on ${layout.what}`,
      async (device) => {
        const rand = rng(21);
        const [a, b, dc, dbOld, daOld] = [0, 1, 2, 3, 4].map(() => randomArray(2 * per, rand));
        const A = place(device, shape, a, { offset: oA, batchStride: per + pad[0], fill: 7 });
        const B = place(device, shape, b, { offset: oB, fill: 7 });
        const C = place(device, shape, undefined, { offset: oC, batchStride: per + pad[1], fill: 6 });
        const DC = place(device, shape, dc, { offset: oDC, fill: 5 });
        const DA = place(device, shape, daOld, { offset: oDA, batchStride: per + pad[2], fill: 4 });
        const DB = place(device, shape, dbOld, { offset: oDB, fill: 4 });
        const p = plan(opContext(device), {
          a: A.view,
          b: B.view,
          c: C.view,
          dc: DC.view,
          da: DA.view,
          db: DB.view,
          accumulateB: true,
        });
        const entries = [...p.forward, ...p.backward].map((d) => d.pipeline.label);
        assert.ok(entries.every((e) => e.endsWith(` (${layout.lane})`)), `entry points: ${entries}`);
        await run(device, [...p.forward, ...p.backward]);
        const ref = binaryBackward(op, a, b, dc);
        const c = await readPlaced(device, C);
        assertClose(c.inside, binaryForward(op, a, b), F32_ONE_OP_TOL, `${name} c`);
        assertUntouched(c.outside, `${name} c`);
        const da = await readPlaced(device, DA);
        assertClose(da.inside, ref.da, F32_ONE_OP_TOL, `${name} da`);
        assertUntouched(da.outside, `${name} da`);
        const db = await readPlaced(device, DB);
        assertClose(db.inside, ref.db.map((v, i) => v + dbOld[i]), F32_ONE_OP_TOL, `${name} db`);
        assertUntouched(db.outside, `${name} db`);
      },
    );
  }
  Deno.test(`${name} reference gradients match central differences`, () => {
    const rand = rng(8);
    const [a, b, dc] = [0, 1, 2].map(() => randomArray(30, rand));
    const g = binaryBackward(op, a, b, dc);
    const loss = () => dot(binaryForward(op, a, b), dc);
    checkFiniteDifferences(a, g.da, loss, `${name} da`, 30);
    checkFiniteDifferences(b, g.db, loss, `${name} db`, 30);
  });
}
