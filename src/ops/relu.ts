import { planUnary, type UnaryArgs } from "./unary.ts";
import type { OpContext, OpPlan } from "./types.ts";

/** ReLU y = max(x, 0); backward dx (=|+=) dy * (x > 0). */
export function planRelu(ctx: OpContext, args: UnaryArgs): OpPlan {
  return planUnary(ctx, "ops/relu.wgsl", "planRelu", args);
}
