import { bindBuffers } from "../gpu/buffers.ts";
import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import { accumulateFlag, batchStride, expectShape } from "./context.ts";
import { WG } from "./unary.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

export interface BatchNormPlan extends OpPlan {
  /** Batch items (1..N) the next steps' statistics cover: a short last batch padded to the planned N. */
  setCount(count: number): void;
}

const FILE = "ops/batchnorm.wgsl";
const BN_PARAMS = uniformLayout(FILE, "Params", [
  ...u32Fields(
    [
      ...["n", "c", "plane", "flags", "xOff", "xBS", "yOff", "yBS", "dyOff", "dyBS", "dxOff", "dxBS"],
      ...["gammaOff", "betaOff", "meanOff", "varOff", "dgammaOff", "dbetaOff"],
    ] as const,
  ),
  ["eps", "f32"],
  ["momentum", "f32"],
]);

export interface BatchNormArgs {
  /** input [N, C, H, W] */
  x: TensorView;
  /** output, overwritten by forward */
  y: TensorView;
  /** scale and shift [C] (views into the params buffer) */
  gamma: TensorView;
  beta: TensorView;
  /** running statistics [C]; both views of one buffer. Training: updated in place by every forward when given;
   * evaluation: required, they normalise. */
  runningMean?: TensorView;
  runningVar?: TensorView;
  /** the node's epsilon (YOLOv5: 1e-3) and PyTorch-convention momentum (YOLOv5: 0.03) */
  eps: number;
  momentum: number;
  dy?: TensorView;
  /** gradient of x: overwritten, or added to when `accumulate` */
  dx?: TensorView;
  /** parameter gradients, ADDED to; both views of one buffer (the flat grads buffer) */
  dgamma?: TensorView;
  dbeta?: TensorView;
  accumulate?: boolean;
  /** false: evaluation mode (PyTorch's model.eval()), the running statistics normalise; forward only */
  training?: boolean;
}

/**
 * BatchNormalization in training mode: batch mean and biased variance normalise, running stats take the unbiased
 * variance. Backward: per-channel sums of dy and dy * xhat, then the closed-form dx. In evaluation mode the
 * running statistics normalise and nothing is updated.
 */
export function planBatchNorm(ctx: OpContext, a: BatchNormArgs): BatchNormPlan {
  const [n, c, h, w] = a.x.shape;
  expectShape("planBatchNorm", "y", a.y, a.x.shape);
  for (const [role, v] of Object.entries({ gamma: a.gamma, beta: a.beta, runningMean: a.runningMean })) {
    if (v) expectShape("planBatchNorm", role, v, [c]);
  }
  if (a.runningVar) expectShape("planBatchNorm", "runningVar", a.runningVar, [c]);
  if (
    !!a.runningMean !== !!a.runningVar || (a.runningMean && a.runningMean.buffer !== a.runningVar!.buffer)
  ) {
    throw new Error("planBatchNorm: runningMean and runningVar must both be given, as views of one buffer");
  }
  const training = a.training ?? true;
  if (!training && (!a.runningMean || a.dy || a.dx || a.dgamma)) {
    throw new Error("planBatchNorm: evaluation mode needs the running statistics and has no backward");
  }
  const plane = h * w;
  if (n * c > MAX_WORKGROUPS_PER_DIMENSION) {
    throw new Error(`planBatchNorm: ${n * c} planes, at most ${MAX_WORKGROUPS_PER_DIMENSION}`);
  }
  const label = `batchnorm [${a.x.shape}]`;
  const stats = ctx.scratch(16 * c, `${label} stats`);
  // Bound where the kernel's flags say the real buffer is not used (running stats, parameter grads absent).
  let unused: GPUBuffer | undefined;
  const orUnused = (b: GPUBuffer | undefined) => b ?? (unused ??= ctx.scratch(16, `${label} unused`));
  const flags = accumulateFlag(a.accumulate) | (training && a.runningMean ? 4 : 0) | (a.dgamma ? 8 : 0);
  // The forward's fields; the backward's dispatches add the gradient views.
  const params: Parameters<typeof BN_PARAMS.pack>[0] = {
    n,
    c,
    plane,
    flags,
    xOff: a.x.offset,
    xBS: batchStride(a.x),
    yOff: a.y.offset,
    yBS: batchStride(a.y),
    gammaOff: a.gamma.offset,
    betaOff: a.beta.offset,
    meanOff: a.runningMean?.offset ?? 0,
    varOff: a.runningVar?.offset ?? 0,
    eps: a.eps,
    momentum: a.momentum,
  };
  const elements = n * c * plane;
  const uniforms: GPUBuffer[] = [];
  const dispatch = (
    entry: string,
    buffers: Record<number, GPUBuffer | undefined>,
    perPixel: boolean,
    workgroups: [number, number, number] = perPixel ? [Math.ceil(plane / WG), n * c, 1] : [c, 1, 1],
  ): Dispatch => {
    const pipeline = ctx.programs.get(FILE, entry, { WG });
    const uniform = ctx.uniform(BN_PARAMS.pack(params, label), `${label} ${entry}`);
    uniforms.push(uniform);
    return {
      label: `${label} ${entry}`,
      pipeline,
      bindGroup: bindBuffers(ctx.device, pipeline, {
        ...buffers,
        3: stats,
        4: uniform,
      }, `${label} ${entry}`),
      workgroups,
      flops: 4 * elements,
      bytes: 4 * (perPixel ? 2 : 1) * elements,
      opClass: "batchnorm",
    };
  };
  const forward = [
    training
      ? dispatch("stats", { 0: a.x.buffer, 5: orUnused(a.runningMean?.buffer) }, false)
      : dispatch("eval_stats", { 5: a.runningMean!.buffer }, false, [Math.ceil(c / WG), 1, 1]),
    dispatch("forward", { 0: a.x.buffer, 1: a.y.buffer, 2: a.gamma.buffer, 9: a.beta.buffer }, true),
  ];
  const backward: Dispatch[] = [];
  if (a.dx || a.dgamma || a.dbeta) {
    if (!a.dy) throw new Error(`planBatchNorm: ${label} needs dy to plan its backward`);
    expectShape("planBatchNorm", "dy", a.dy, a.x.shape);
    if (!!a.dgamma !== !!a.dbeta || (a.dgamma && a.dgamma.buffer !== a.dbeta!.buffer)) {
      throw new Error("planBatchNorm: dgamma and dbeta must both be given, as views of one buffer");
    }
    Object.assign(params, {
      dyOff: a.dy.offset,
      dyBS: batchStride(a.dy),
      dxOff: a.dx?.offset ?? 0,
      dxBS: a.dx ? batchStride(a.dx) : 0,
      dgammaOff: a.dgamma?.offset ?? 0,
      dbetaOff: a.dbeta?.offset ?? 0,
    });
    backward.push(
      dispatch("backward_stats", { 0: a.x.buffer, 6: a.dy.buffer, 8: orUnused(a.dgamma?.buffer) }, false),
    );
    if (a.dx) {
      expectShape("planBatchNorm", "dx", a.dx, a.x.shape);
      backward.push(
        dispatch("backward", { 0: a.x.buffer, 2: a.gamma.buffer, 6: a.dy.buffer, 7: a.dx.buffer }, true),
      );
    }
  }
  const setCount = (count: number) => {
    if (!Number.isInteger(count) || count < 1 || count > n) {
      throw new Error(`planBatchNorm: ${label} covers 1..${n} batch items, got ${count}`);
    }
    // Field n comes first in the struct: rewrite just that word.
    for (const u of uniforms) ctx.device.queue.writeBuffer(u, 0, new Uint32Array([count]));
  };
  return { forward, backward, setCount };
}
