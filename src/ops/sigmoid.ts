import { planUnary, type UnaryArgs } from "./unary.ts";
import type { OpContext, OpPlan } from "./types.ts";

/** Sigmoid y = 1 / (1 + exp(-x)); backward dx (=|+=) dy * s * (1 - s). */
export function planSigmoid(ctx: OpContext, args: UnaryArgs): OpPlan {
  return planUnary(ctx, "ops/sigmoid.wgsl", "planSigmoid", args);
}
