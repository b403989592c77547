import { bindBuffers } from "../gpu/buffers.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import { accumulateFlag, batchStride, expectShape, grid1d } from "./context.ts";
import { WG } from "./unary.ts";
import type { Dispatch, OpContext, OpPlan, TensorView } from "./types.ts";

const FILE = "ops/resize.wgsl";
const RESIZE_PARAMS = uniformLayout(
  FILE,
  "Params",
  u32Fields(
    [
      ...["count", "pitch", "flags", "_pad", "xOff", "xBS", "yOff", "yBS"],
      ...["dyOff", "dyBS", "dxOff", "dxBS"],
    ] as const,
  ),
);

export interface ResizeArgs {
  /** input [N, C, H, W] */
  x: TensorView;
  /** output [N, C, H * scaleY, W * scaleX], overwritten by forward */
  y: TensorView;
  /** integer scale factors (YOLOv5's Upsample: 2, 2) */
  scaleY: number;
  scaleX: number;
  dy?: TensorView;
  /** gradient of x: overwritten, or added to when `accumulate` (x fans out to several consumers) */
  dx?: TensorView;
  accumulate?: boolean;
}

/** Nearest upsampling by integer factors (ONNX Resize nearest/asymmetric/floor); backward sums each block of dy. */
export function planResizeNearest(ctx: OpContext, a: ResizeArgs): OpPlan {
  const [n, c, h, w] = a.x.shape;
  const { scaleY: sy, scaleX: sx } = a;
  if (!Number.isInteger(sy) || !Number.isInteger(sx) || sy < 1 || sx < 1) {
    throw new Error(`planResizeNearest: scales ${sy}, ${sx}, expected positive integers`);
  }
  expectShape("planResizeNearest", "y", a.y, [n, c, h * sy, w * sx]);
  const label = `resize x${sy},${sx} [${a.x.shape}]`;
  const constants = { WG, C: c, H: h, W: w, SY: sy, SX: sx };
  const geometry = {
    xOff: a.x.offset,
    xBS: batchStride(a.x),
    yOff: a.y.offset,
    yBS: batchStride(a.y),
  };
  const outCount = n * c * h * sy * w * sx;
  const fg = grid1d(outCount, WG);
  const fwd = ctx.programs.get(FILE, "forward", constants);
  const forward: Dispatch[] = [{
    label: `${label} forward`,
    pipeline: fwd,
    bindGroup: bindBuffers(ctx.device, fwd, {
      0: a.x.buffer,
      1: a.y.buffer,
      4: ctx.uniform(
        RESIZE_PARAMS.pack({ count: outCount, pitch: fg.pitch, ...geometry }, label),
        `${label} forward`,
      ),
    }, `${label} forward`),
    workgroups: fg.workgroups,
    bytes: 8 * outCount,
    opClass: "resize",
  }];
  const backward: Dispatch[] = [];
  if (a.dx) {
    if (!a.dy) throw new Error(`planResizeNearest: ${label} needs dy to plan its backward`);
    expectShape("planResizeNearest", "dy", a.dy, a.y.shape);
    expectShape("planResizeNearest", "dx", a.dx, a.x.shape);
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
        2: a.dy.buffer,
        3: a.dx.buffer,
        4: ctx.uniform(
          RESIZE_PARAMS.pack(
            { count: inCount, pitch: bg.pitch, flags: accumulateFlag(a.accumulate), ...geometry, ...grads },
            label,
          ),
          `${label} backward`,
        ),
      }, `${label} backward`),
      workgroups: bg.workgroups,
      flops: outCount,
      bytes: 4 * (outCount + 2 * inCount),
      opClass: "resize",
    });
  }
  return { forward, backward };
}
