import { bindBuffers } from "../gpu/buffers.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
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
  /** use the file's `forward4`/`backward4` entry points over vec4 bindings 5-8 for 4-aligned views */
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
 * entry points over the shared Params layout of wgsl/ops/activation.wgsl.
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
  const workgroups = grid2d(per, a.x.shape[0], name);
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
  // vec4 entry points where the file has them and every view is 4-aligned.
  const v4 = (...views: TensorView[]) =>
    !!opts.vec4 && per % 4 === 0 && views.every((v) => v.offset % 4 === 0 && batchStride(v) % 4 === 0);
  const label = `${name} [${a.x.shape}]`;
  const fwd4 = v4(a.x, a.y);
  const fwd = ctx.programs.get(file, fwd4 ? "forward4" : "forward", { WG, ...opts.constants });
  const forward: Dispatch[] = [{
    label: `${label} forward`,
    pipeline: fwd,
    bindGroup: bindBuffers(ctx.device, fwd, {
      [fwd4 ? 5 : 0]: a.x.buffer,
      [fwd4 ? 6 : 1]: a.y.buffer,
      4: ctx.uniform(UNARY_PARAMS.pack(params, label), `${label} forward`),
    }, `${label} forward`),
    workgroups: fwd4 ? grid2d(per / 4, a.x.shape[0], name) : workgroups,
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
    const bwd4 = v4(a.x, a.dy, a.dx);
    const bwd = ctx.programs.get(file, bwd4 ? "backward4" : "backward", { WG, ...opts.constants });
    const readsX = opts.backwardReadsX ?? true;
    backward.push({
      label: `${label} backward`,
      pipeline: bwd,
      bindGroup: bindBuffers(ctx.device, bwd, {
        [bwd4 ? 5 : 0]: readsX ? a.x.buffer : undefined,
        [bwd4 ? 7 : 2]: a.dy.buffer,
        [bwd4 ? 8 : 3]: a.dx.buffer,
        4: ctx.uniform(UNARY_PARAMS.pack({ ...params, ...grads }, label), `${label} backward`),
      }, `${label} backward`),
      workgroups: bwd4 ? grid2d(per / 4, a.x.shape[0], name) : workgroups,
      bytes: 4 * (a.accumulate ? 4 : 3) * count,
      opClass: "elementwise",
    });
  }
  return { forward, backward };
}
