import { batchStride } from "./context.ts";
import { planUnary } from "./unary.ts";
import type { OpContext, OpPlan, TensorView } from "./types.ts";

/**
 * Channels [c0, c0 + c) of an NCHW view, as a view of the same buffer: a producer writing into it fills that part of
 * a Concat's output, and a consumer reading it sees that output of a Split, with no copy.
 */
export function channelSlice(v: TensorView, c0: number, c: number): TensorView {
  const [n, channels, ...rest] = v.shape;
  if (c0 < 0 || c0 + c > channels) {
    throw new Error(`channelSlice: channels [${c0}, ${c0 + c}) outside [0, ${channels}) of [${v.shape}]`);
  }
  const plane = rest.reduce((a, b) => a * b, 1);
  return {
    buffer: v.buffer,
    offset: v.offset + c0 * plane,
    shape: [n, c, ...rest],
    batchStride: batchStride(v),
  };
}

export interface ConcatArgs {
  inputs: TensorView[];
  /** output; inputs are concatenated along axis 1 (channels) */
  y: TensorView;
  dy?: TensorView;
  /** gradients of the inputs (undefined entries are skipped) */
  dinputs?: (TensorView | undefined)[];
  /** per input: add into its gradient instead of overwriting it */
  accumulate?: boolean[];
}

/** Concat along channels by copies (for inputs that cannot be produced in place); backward copies dy's slices. */
export function planConcat(ctx: OpContext, a: ConcatArgs): OpPlan {
  const plan: OpPlan = { forward: [], backward: [] };
  let c0 = 0;
  a.inputs.forEach((x, i) => {
    const c = x.shape[1];
    const dx = a.dinputs?.[i];
    const part = planUnary(
      ctx,
      "ops/copy.wgsl",
      "planConcat",
      {
        x,
        y: channelSlice(a.y, c0, c),
        dy: dx && a.dy ? channelSlice(a.dy, c0, c) : undefined,
        dx,
        accumulate: a.accumulate?.[i],
      },
      { backwardReadsX: false },
    );
    plan.forward.push(...part.forward);
    plan.backward.push(...part.backward);
    c0 += c;
  });
  if (c0 !== a.y.shape[1]) throw new Error(`planConcat: inputs have ${c0} channels, output [${a.y.shape}]`);
  return plan;
}

export interface SplitArgs {
  x: TensorView;
  /** outputs; x is split along axis 1 (channels) in order */
  outputs: TensorView[];
  douts?: (TensorView | undefined)[];
  /** gradient of x, each output's slice overwritten (or added to when `accumulate`); slices of outputs without a
   * gradient are left alone, so pass zeros there or make sure every output has one */
  dx?: TensorView;
  accumulate?: boolean;
}

/** Split along channels by copies; backward writes each output's gradient into its slice of dx. */
export function planSplit(ctx: OpContext, a: SplitArgs): OpPlan {
  const plan: OpPlan = { forward: [], backward: [] };
  let c0 = 0;
  a.outputs.forEach((y, i) => {
    const c = y.shape[1];
    const dy = a.douts?.[i];
    const part = planUnary(
      ctx,
      "ops/copy.wgsl",
      "planSplit",
      {
        x: channelSlice(a.x, c0, c),
        y,
        dy,
        dx: dy && a.dx ? channelSlice(a.dx, c0, c) : undefined,
        accumulate: a.accumulate,
      },
      { backwardReadsX: false },
    );
    plan.forward.push(...part.forward);
    plan.backward.push(...part.backward);
    c0 += c;
  });
  if (c0 !== a.x.shape[1]) throw new Error(`planSplit: outputs have ${c0} channels, input [${a.x.shape}]`);
  return plan;
}
