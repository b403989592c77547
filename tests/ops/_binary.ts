// One test recipe shared by the same-shape binary ops: GPU forward and backward against the float64 reference on
// views, one gradient overwritten and the other accumulated, and the reference gradients against central differences.
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

export function binaryTests(
  name: string,
  plan: (ctx: OpContext, a: BinaryArgs) => OpPlan,
  op: BinaryOp,
): void {
  const shape = [2, 3, 5, 7];
  const per = 3 * 5 * 7;
  gpuTest(
    `${name} forward and backward match the reference (da overwritten, db accumulated)`,
    async (device) => {
      const rand = rng(21);
      const [a, b, dc, dbOld, daOld] = [0, 1, 2, 3, 4].map(() => randomArray(2 * per, rand));
      const A = place(device, shape, a, { offset: 3, batchStride: per + 5, fill: 7 });
      const B = place(device, shape, b, { offset: 1, fill: 7 });
      const C = place(device, shape, undefined, { offset: 2, batchStride: per + 3, fill: 6 });
      const DC = place(device, shape, dc, { offset: 4, fill: 5 });
      const DA = place(device, shape, daOld, { offset: 1, batchStride: per + 1, fill: 4 });
      const DB = place(device, shape, dbOld, { offset: 6, fill: 4 });
      const p = plan(opContext(device), {
        a: A.view,
        b: B.view,
        c: C.view,
        dc: DC.view,
        da: DA.view,
        db: DB.view,
        accumulateB: true,
      });
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
  Deno.test(`${name} reference gradients match central differences`, () => {
    const rand = rng(8);
    const [a, b, dc] = [0, 1, 2].map(() => randomArray(30, rand));
    const g = binaryBackward(op, a, b, dc);
    const loss = () => dot(binaryForward(op, a, b), dc);
    checkFiniteDifferences(a, g.da, loss, `${name} da`, 30);
    checkFiniteDifferences(b, g.db, loss, `${name} db`, 30);
  });
}
