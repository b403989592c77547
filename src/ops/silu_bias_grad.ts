import { bindBuffers } from "../gpu/buffers.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import { batchStride } from "./context.ts";
import type { Dispatch, OpContext, TensorView } from "./types.ts";

// The backward of a SiLU fused after a conv with bias (wgsl/ops/silu_bias_grad.wgsl), for planConv.
const FILE = "ops/silu_bias_grad.wgsl";
/** Lanes per workgroup (one workgroup per channel; a power of two: the lanes' sums are added by halving): one
 * SIMD group of lavapipe's. Measured there (YOLOv5n 320, batch 8, CPU-ms per step, dispatches alternating),
 * all of them: 64 lanes 129 -> 8 lanes 80 (16: 82, 32: 108, 256: 200); lavapipe runs a workgroup's SIMD groups
 * one after the other, switching at each barrier. */
const WG = 8;

const PARAMS = uniformLayout(
  FILE,
  "Params",
  u32Fields(
    ["batch", "P", "dbOff", "_pad", "xOff", "xBS", "dyOff", "dyBS", "dxOff", "dxBS", "_p0", "_p1"] as const,
  ),
);

/** dx = dy * silu'(x) and db += the sum of dx per channel, for [n, c, h, w] views x (the conv's output before the
 * SiLU), dy (the SiLU output's gradient) and dx (the conv's output gradient, overwritten). */
export function siluBiasGrad(
  ctx: OpContext,
  label: string,
  t: { x: TensorView; dy: TensorView; dx: TensorView; db: TensorView },
): Dispatch {
  const [n, c, h, w] = t.x.shape;
  const P = h * w;
  const views = [t.x, t.dy, t.dx];
  const vec4 = P % 4 === 0 && views.every((v) => v.offset % 4 === 0 && batchStride(v) % 4 === 0);
  const pipeline = ctx.programs.get(FILE, vec4 ? "silu_bias_grad_vec4" : "silu_bias_grad", { WG });
  const u = ctx.uniform(
    PARAMS.pack({
      batch: n,
      P,
      dbOff: t.db.offset,
      xOff: t.x.offset,
      xBS: batchStride(t.x),
      dyOff: t.dy.offset,
      dyBS: batchStride(t.dy),
      dxOff: t.dx.offset,
      dxBS: batchStride(t.dx),
    }, label),
    label,
  );
  const buffers = vec4
    ? { 5: t.x.buffer, 6: t.dy.buffer, 7: t.dx.buffer, 3: t.db.buffer, 4: u }
    : { 0: t.x.buffer, 1: t.dy.buffer, 2: t.dx.buffer, 3: t.db.buffer, 4: u };
  return {
    label,
    pipeline,
    bindGroup: bindBuffers(ctx.device, pipeline, buffers, label),
    workgroups: [c, 1, 1],
    flops: 2 * n * c * P,
    bytes: 12 * n * c * P,
    opClass: "conv_bwd_weight",
  };
}
