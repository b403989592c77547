/**
 * The elementwise activations, all one kernel (wgsl/ops/activation.wgsl) specialised by its `ACT` override.
 * @module
 */
import { planUnary, type UnaryArgs } from "./unary.ts";
import type { OpContext, OpPlan } from "./types.ts";

const FILE = "ops/activation.wgsl";
/** The kernel's `ACT` values. */
const ACT = { relu: 0, leakyrelu: 1, sigmoid: 2, silu: 3 } as const;

/** ReLU y = max(x, 0); backward dx (=|+=) dy * (x > 0). */
export function planRelu(ctx: OpContext, args: UnaryArgs): OpPlan {
  return planUnary(ctx, FILE, "planRelu", args, { constants: { ACT: ACT.relu } });
}

/** LeakyReLU with slope `alpha` below 0 (ONNX default 0.01); backward dx (=|+=) dy * (x > 0 ? 1 : alpha). */
export function planLeakyRelu(ctx: OpContext, args: UnaryArgs & { alpha?: number }): OpPlan {
  return planUnary(ctx, FILE, "planLeakyRelu", args, {
    constants: { ACT: ACT.leakyrelu },
    alpha: args.alpha ?? 0.01,
  });
}

/** Sigmoid y = 1 / (1 + exp(-x)); backward dx (=|+=) dy * s * (1 - s). */
export function planSigmoid(ctx: OpContext, args: UnaryArgs): OpPlan {
  return planUnary(ctx, FILE, "planSigmoid", args, { constants: { ACT: ACT.sigmoid } });
}

/** SiLU y = x * sigmoid(x) (ONNX's Sigmoid + Mul pair fused); backward dx (=|+=) dy * silu'(x). */
export function planSilu(ctx: OpContext, args: UnaryArgs): OpPlan {
  return planUnary(ctx, FILE, "planSilu", args, { constants: { ACT: ACT.silu }, vec4: true });
}
