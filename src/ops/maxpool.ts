import { bindBuffers } from "../gpu/buffers.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import { accumulateFlag, batchStride, expectShape, grid1d } from "./context.ts";
import { WG } from "./unary.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

const FILE = "ops/maxpool.wgsl";
const MAXPOOL_PARAMS = uniformLayout(
  FILE,
  "Params",
  u32Fields(
    [
      ...["count", "pitch", "flags", "_pad", "xOff", "xBS", "yOff", "yBS"],
      ...["dyOff", "dyBS", "dxOff", "dxBS"],
    ] as const,
  ),
);

export interface MaxPoolArgs {
  /** input [N, C, H, W] */
  x: TensorView;
  /** output [N, C, Ho, Wo], overwritten by forward */
  y: TensorView;
  kernel: number;
  stride: number;
  pad: number;
  dy?: TensorView;
  /** gradient of x: overwritten, or added to when `accumulate` (x fans out to several consumers) */
  dx?: TensorView;
  accumulate?: boolean;
}

/**
 * Max pooling (square kernel, symmetric padding acting as -inf). Forward records each output's winning input (the
 * FIRST maximum in row-major window order, as PyTorch) in a plan-time scratch; backward gathers dy onto winners.
 */
export function planMaxPool(ctx: OpContext, a: MaxPoolArgs): OpPlan {
  const [n, c, h, w] = a.x.shape;
  const { kernel: k, stride: s, pad } = a;
  if (2 * pad > k) {
    throw new Error(`planMaxPool: pad ${pad} must be at most half of kernel ${k}`);
  }
  const ho = Math.floor((h + 2 * pad - k) / s) + 1;
  const wo = Math.floor((w + 2 * pad - k) / s) + 1;
  expectShape("planMaxPool", "y", a.y, [n, c, ho, wo]);
  const label = `maxpool k${k} s${s} p${pad} [${a.x.shape}]`;
  const arg = ctx.scratch(4 * n * c * ho * wo, `${label} argmax`);
  const constants = { WG, C: c, H: h, W: w, HO: ho, WO: wo, KH: k, KW: k, STRIDE: s, PAD: pad };
  const geometry = {
    xOff: a.x.offset,
    xBS: batchStride(a.x),
    yOff: a.y.offset,
    yBS: batchStride(a.y),
  };
  const outCount = n * c * ho * wo;
  const fg = grid1d(outCount, WG);
  const fwd = ctx.programs.get(FILE, "forward", constants);
  const forward: Dispatch[] = [{
    label: `${label} forward`,
    pipeline: fwd,
    bindGroup: bindBuffers(ctx.device, fwd, {
      0: a.x.buffer,
      1: a.y.buffer,
      2: arg,
      5: ctx.uniform(
        MAXPOOL_PARAMS.pack({ count: outCount, pitch: fg.pitch, ...geometry }, label),
        `${label} forward`,
      ),
    }, `${label} forward`),
    workgroups: fg.workgroups,
    flops: outCount * k * k,
    bytes: 4 * (n * c * h * w + 2 * outCount),
    opClass: "pool",
  }];
  const backward: Dispatch[] = [];
  if (a.dx) {
    if (!a.dy) throw new Error(`planMaxPool: ${label} needs dy to plan its backward`);
    expectShape("planMaxPool", "dy", a.dy, [n, c, ho, wo]);
    expectShape("planMaxPool", "dx", a.dx, [n, c, h, w]);
    const inCount = n * c * h * w;
    const bg = grid1d(inCount, WG);
    const grads = {
      dyOff: a.dy.offset,
      dyBS: batchStride(a.dy),
      dxOff: a.dx.offset,
      dxBS: batchStride(a.dx),
    };
    const bwd = ctx.programs.get(FILE, "backward", constants);
    backward.push({
      label: `${label} backward`,
      pipeline: bwd,
      bindGroup: bindBuffers(ctx.device, bwd, {
        3: a.dy.buffer,
        4: a.dx.buffer,
        5: ctx.uniform(
          MAXPOOL_PARAMS.pack(
            { count: inCount, pitch: bg.pitch, flags: accumulateFlag(a.accumulate), ...geometry, ...grads },
            label,
          ),
          `${label} backward`,
        ),
        6: arg,
      }, `${label} backward`),
      workgroups: bg.workgroups,
      bytes: 4 * (3 * inCount + 2 * outCount),
      opClass: "pool",
    });
  }
  return { forward, backward };
}
