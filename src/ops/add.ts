import { type BinaryArgs, planBinary } from "./binary.ts";
import type { OpContext, OpPlan } from "./types.ts";

/** c = a + b (same shapes); backward da, db (=|+=) dc. */
export function planAdd(ctx: OpContext, args: BinaryArgs): OpPlan {
  return planBinary(ctx, "ops/add.wgsl", "planAdd", args, false);
}
