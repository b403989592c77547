import { planUnary, type UnaryArgs } from "./unary.ts";
import type { OpContext, OpPlan } from "./types.ts";

/** LeakyReLU with slope `alpha` below 0 (ONNX default 0.01); backward dx (=|+=) dy * (x > 0 ? 1 : alpha). */
export function planLeakyRelu(ctx: OpContext, args: UnaryArgs & { alpha?: number }): OpPlan {
  return planUnary(ctx, "ops/leakyrelu.wgsl", "planLeakyRelu", args, { alpha: args.alpha ?? 0.01 });
}
