import { bindBuffers } from "../gpu/buffers.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import type { LaneType } from "../gpu/wgsl.ts";
import { accumulateFlag, batchStride, elementCount, expectShape } from "./context.ts";
import { grid2d, WG } from "./unary.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

export interface BinaryArgs {
  a: TensorView;
  b: TensorView;
  /** output, same shape as a and b, overwritten by forward */
  c: TensorView;
  dc?: TensorView;
  /** gradient of a: overwritten, or added to when `accumulateA` */
  da?: TensorView;
  /** gradient of b: overwritten, or added to when `accumulateB` */
  db?: TensorView;
  accumulateA?: boolean;
  accumulateB?: boolean;
}

const FILE = "ops/binary.wgsl";
/** wgsl/ops/binary.wgsl's `Params`: o is the other operand a product's backward reads. */
const BINARY_PARAMS = uniformLayout(
  FILE,
  "Params",
  u32Fields(
    [
      ...["count", "per", "_pad", "flags", "aOff", "aBS", "bOff", "bBS"],
      ...["cOff", "cBS", "dcOff", "dcBS", "dxOff", "dxBS", "oOff", "oBS"],
    ] as const,
  ),
);

/** c = a + b (same shapes); backward da, db (=|+=) dc. */
export function planAdd(ctx: OpContext, args: BinaryArgs): OpPlan {
  return planBinary(ctx, "planAdd", args, 0);
}

/** c = a * b (same shapes); backward da (=|+=) dc * b, db (=|+=) dc * a. */
export function planMul(ctx: OpContext, args: BinaryArgs): OpPlan {
  return planBinary(ctx, "planMul", args, 1);
}

/**
 * Plans wgsl/ops/binary.wgsl for its `OP` (0 add, 1 multiply): `forward` (C = A op B) and per gradient wanted
 * `backward` (DX (+)= DC) or, for a product, `backwardProduct` (DX (+)= DC * the other input); each compiled
 * with vec4f lanes where the views it touches are 4-aligned, f32 ones elsewhere.
 */
function planBinary(ctx: OpContext, name: string, a: BinaryArgs, op: 0 | 1): OpPlan {
  const usesOther = op === 1;
  expectShape(name, "b", a.b, a.a.shape);
  expectShape(name, "c", a.c, a.a.shape);
  const count = elementCount(a.a);
  const per = count / a.a.shape[0];
  // vec4f lanes where every view a dispatch touches is 4-aligned (wgsl/ops/binary.wgsl).
  const lane = (views: TensorView[]): LaneType =>
    per % 4 === 0 && views.every((v) => v.offset % 4 === 0 && batchStride(v) % 4 === 0) ? "vec4f" : "f32";
  const pipeline = (entry: string, views: TensorView[], constants: Record<string, number>) =>
    ctx.programs.get(FILE, entry, constants, "f32", lane(views));
  const grid = (views: TensorView[]) => grid2d(lane(views) === "vec4f" ? per / 4 : per, a.a.shape[0], name);
  const label = `${name} [${a.a.shape}]`;
  const head = { count, per };
  const io = [a.a, a.b, a.c];
  const fwd = pipeline("forward", io, { WG, OP: op });
  const fwdParams = {
    ...head,
    aOff: a.a.offset,
    aBS: batchStride(a.a),
    bOff: a.b.offset,
    bBS: batchStride(a.b),
    cOff: a.c.offset,
    cBS: batchStride(a.c),
  };
  const forward: Dispatch[] = [{
    label: `${label} forward`,
    pipeline: fwd,
    bindGroup: bindBuffers(ctx.device, fwd, {
      0: a.a.buffer,
      1: a.b.buffer,
      2: a.c.buffer,
      5: ctx.uniform(BINARY_PARAMS.pack(fwdParams, label), `${label} forward`),
    }, `${label} forward`),
    workgroups: grid(io),
    bytes: 12 * count,
    opClass: "elementwise",
  }];
  const backward: Dispatch[] = [];
  const grads: [TensorView | undefined, boolean | undefined, TensorView][] = [
    [a.da, a.accumulateA, a.b],
    [a.db, a.accumulateB, a.a],
  ];
  for (const [dx, accumulate, other] of grads) {
    if (!dx) continue;
    if (!a.dc) throw new Error(`${name}: ${label} needs dc to plan its backward`);
    expectShape(name, "dc", a.dc, a.a.shape);
    expectShape(name, "gradient", dx, a.a.shape);
    const views = usesOther ? [a.dc, dx, other] : [a.dc, dx];
    const bwd = pipeline(usesOther ? "backwardProduct" : "backward", views, { WG });
    const l = `${label} backward ${dx === a.da ? "a" : "b"}`;
    const params = {
      ...head,
      flags: accumulateFlag(accumulate),
      dcOff: a.dc.offset,
      dcBS: batchStride(a.dc),
      dxOff: dx.offset,
      dxBS: batchStride(dx),
      oOff: other.offset,
      oBS: batchStride(other),
    };
    const bindings = {
      3: a.dc.buffer,
      4: dx.buffer,
      5: ctx.uniform(BINARY_PARAMS.pack(params, l), l),
      6: usesOther ? other.buffer : undefined,
    };
    backward.push({
      label: l,
      pipeline: bwd,
      bindGroup: bindBuffers(ctx.device, bwd, bindings, l),
      workgroups: grid(views),
      bytes: 4 * (usesOther ? 4 : 3) * count,
      opClass: "elementwise",
    });
  }
  return { forward, backward };
}
