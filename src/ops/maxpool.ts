import { bindBuffers } from "../gpu/buffers.ts";
import { accumulateFlag, batchStride, expectShape, grid1d, uniformU32 } from "./context.ts";
import { WG } from "./unary.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

const FILE = "ops/maxpool.wgsl";

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
  const geometry = [
    c,
    h,
    w,
    ho,
    wo,
    k,
    k,
    s,
    pad,
    a.x.offset,
    batchStride(a.x),
    a.y.offset,
    batchStride(a.y),
  ];
  const outCount = n * c * ho * wo;
  const fg = grid1d(outCount, WG);
  const fwd = ctx.programs.get(FILE, "forward", { WG });
  const forward: Dispatch[] = [{
    label: `${label} forward`,
    pipeline: fwd,
    bindGroup: bindBuffers(ctx.device, fwd, {
      0: a.x.buffer,
      1: a.y.buffer,
      2: arg,
      5: uniformU32(ctx, [outCount, fg.pitch, 0, ...geometry, 0, 0, 0, 0], `${label} forward`),
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
    const grads = [a.dy.offset, batchStride(a.dy), a.dx.offset, batchStride(a.dx)];
    const bwd = ctx.programs.get(FILE, "backward", { WG });
    backward.push({
      label: `${label} backward`,
      pipeline: bwd,
      bindGroup: bindBuffers(ctx.device, bwd, {
        3: a.dy.buffer,
        4: a.dx.buffer,
        5: uniformU32(
          ctx,
          [inCount, bg.pitch, accumulateFlag(a.accumulate), ...geometry, ...grads],
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
