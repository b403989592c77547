import { planUnary, type UnaryArgs } from "./unary.ts";
import type { OpContext, OpPlan } from "./types.ts";

/** SiLU y = x * sigmoid(x) (ONNX's Sigmoid + Mul pair fused); backward dx (=|+=) dy * silu'(x). */
export function planSilu(ctx: OpContext, args: UnaryArgs): OpPlan {
  return planUnary(ctx, "ops/silu.wgsl", "planSilu", args, { vec4: true });
}
