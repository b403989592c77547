import { type BinaryArgs, planBinary } from "./binary.ts";
import type { OpContext, OpPlan } from "./types.ts";

/** c = a * b (same shapes); backward da (=|+=) dc * b, db (=|+=) dc * a. */
export function planMul(ctx: OpContext, args: BinaryArgs): OpPlan {
  return planBinary(ctx, "ops/mul.wgsl", "planMul", args, true);
}
