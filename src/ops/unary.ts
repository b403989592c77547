import { bindBuffers } from "../gpu/buffers.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import type { LaneType } from "../gpu/wgsl.ts";
import { accumulateFlag, batchStride, elementCount, expectShape, groups } from "./context.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

/** Invocations per workgroup of the elementwise kernels. */
export const WG = 64;
/** The `Params` uniform the files planUnary runs share. */
const UNARY_PARAMS = uniformLayout(["ops/activation.wgsl", "ops/copy.wgsl"], "Params", [
  ...u32Fields([
    "count",
    "per",
    "_pad",
    "flags",
    "xOff",
    "xBS",
    "yOff",
    "yBS",
    "dyOff",
    "dyBS",
    "dxOff",
    "dxBS",
  ]),
  ["alpha", "f32"],
  ...u32Fields(["_p0", "_p1", "_p2"]),
]);

export interface UnaryArgs {
  x: TensorView;
  /** output, same shape as x, overwritten by forward */
  y: TensorView;
  dy?: TensorView;
  /** gradient of x: overwritten, or added to when `accumulate` (x fans out to several consumers) */
  dx?: TensorView;
  accumulate?: boolean;
}

export interface UnaryOptions {
  /** override constants selecting the kernel's variant (besides WG) */
  constants?: Record<string, number>;
  /** the op's one float attribute (LeakyReLU's slope) */
  alpha?: number;
  /** false for kernels whose derivative does not depend on x (copies) */
  backwardReadsX?: boolean;
  /** compile the kernel with vec4f lanes for 4-aligned views (f32 lanes otherwise, and always without this) */
  vec4?: boolean;
}

/** Workgroups over `per` elements (x) of each of `n` batch items (y): the kernels then need no division. */
export function grid2d(per: number, n: number, name: string): [number, number, number] {
  const x = groups(per, WG);
  if (x > MAX_WORKGROUPS_PER_DIMENSION || n > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`${name}: ${n} x ${per} elements exceed one dispatch`);
  }
  return [x, n, 1];
}

/**
 * Plans an elementwise activation whose WGSL file has `forward` (Y = f(X)) and `backward` (DX (+)= DY * f'(X))
 * entry points over the shared Params layout of wgsl/ops/activation.wgsl, written against `Lane` (src/gpu/wgsl.ts).
 */
export function planUnary(
  ctx: OpContext,
  file: string,
  name: string,
  a: UnaryArgs,
  opts: UnaryOptions = {},
): OpPlan {
  expectShape(name, "y", a.y, a.x.shape);
  const count = elementCount(a.x);
  const per = count / a.x.shape[0];
  const params = {
    count,
    per,
    flags: accumulateFlag(a.accumulate),
    xOff: a.x.offset,
    xBS: batchStride(a.x),
    yOff: a.y.offset,
    yBS: batchStride(a.y),
    alpha: opts.alpha ?? 0,
  };
  // vec4f lanes where the op takes them and every view a dispatch touches is 4-aligned.
  const lane = (views: TensorView[]): LaneType =>
    !!opts.vec4 && per % 4 === 0 && views.every((v) => v.offset % 4 === 0 && batchStride(v) % 4 === 0)
      ? "vec4f"
      : "f32";
  const pipeline = (entry: string, views: TensorView[]) =>
    ctx.programs.get(file, entry, { WG, ...opts.constants }, "f32", lane(views));
  const grid = (views: TensorView[]) => grid2d(lane(views) === "vec4f" ? per / 4 : per, a.x.shape[0], name);
  const label = `${name} [${a.x.shape}]`;
  const fwdViews = [a.x, a.y];
  const fwd = pipeline("forward", fwdViews);
  const forward: Dispatch[] = [{
    label: `${label} forward`,
    pipeline: fwd,
    bindGroup: bindBuffers(ctx.device, fwd, {
      0: a.x.buffer,
      1: a.y.buffer,
      4: ctx.uniform(UNARY_PARAMS.pack(params, label), `${label} forward`),
    }, `${label} forward`),
    workgroups: grid(fwdViews),
    bytes: 8 * count,
    opClass: "elementwise",
  }];
  const backward: Dispatch[] = [];
  if (a.dx) {
    if (!a.dy) throw new Error(`${name}: ${label} needs dy to plan its backward`);
    expectShape(name, "dy", a.dy, a.x.shape);
    expectShape(name, "dx", a.dx, a.x.shape);
    const grads = {
      dyOff: a.dy.offset,
      dyBS: batchStride(a.dy),
      dxOff: a.dx.offset,
      dxBS: batchStride(a.dx),
    };
    const bwdViews = [a.x, a.dy, a.dx];
    const bwd = pipeline("backward", bwdViews);
    const readsX = opts.backwardReadsX ?? true;
    backward.push({
      label: `${label} backward`,
      pipeline: bwd,
      bindGroup: bindBuffers(ctx.device, bwd, {
        0: readsX ? a.x.buffer : undefined,
        2: a.dy.buffer,
        3: a.dx.buffer,
        4: ctx.uniform(UNARY_PARAMS.pack({ ...params, ...grads }, label), `${label} backward`),
      }, `${label} backward`),
      workgroups: grid(bwdViews),
      bytes: 4 * (a.accumulate ? 4 : 3) * count,
      opClass: "elementwise",
    });
  }
  return { forward, backward };
}
