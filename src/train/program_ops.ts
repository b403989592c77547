/**
 * One IR node -> the op kernels' plan (src/ops): which views each op reads and writes, and which gradients it
 * produces (dx only where upstream needs it, dw/db only for trainable parameters).
 * @module
 */
import type { IrNode } from "../onnx/graph.ts";
import { planAdd } from "../ops/add.ts";
import { planConv } from "../ops/conv.ts";
import { planLeakyRelu } from "../ops/leakyrelu.ts";
import { planMul } from "../ops/mul.ts";
import { planRelu } from "../ops/relu.ts";
import { planSigmoid } from "../ops/sigmoid.ts";
import { planSilu } from "../ops/silu.ts";
import type { OpContext, OpPlan, TensorView } from "../ops/types.ts";

/** What a node's plan is given; `grad(x)` is undefined where no gradient is wanted. */
export interface NodeIo {
  value(t: string): TensorView;
  /** gradient of a data tensor, if backward needs it */
  grad(t: string): TensorView | undefined;
  /** true when this node's gradient write into `t` must add to what is there */
  accumulate(t: string): boolean;
  param(name: string): TensorView;
  /** gradient view of a trainable, unfrozen parameter */
  paramGrad(name: string): TensorView | undefined;
}

const EMPTY: OpPlan = { forward: [], backward: [] };

export function planNode(ctx: OpContext, n: IrNode, io: NodeIo): OpPlan {
  switch (n.op) {
    case "conv": {
      const dy = io.grad(n.y);
      return planConv(ctx, {
        x: io.value(n.x),
        w: io.param(n.weight),
        b: n.bias ? io.param(n.bias) : undefined,
        y: io.value(n.y),
        dy,
        dx: dy && io.grad(n.x),
        dw: dy && io.paramGrad(n.weight),
        db: dy && n.bias ? io.paramGrad(n.bias) : undefined,
        stride: n.stride,
        pad: n.pad,
        dilation: n.dilation,
        groups: n.groups,
        accumulate: io.accumulate(n.x),
      });
    }
    case "silu":
    case "sigmoid":
    case "relu":
    case "leakyrelu": {
      const dy = io.grad(n.y);
      const args = {
        x: io.value(n.x),
        y: io.value(n.y),
        dy,
        dx: dy && io.grad(n.x),
        accumulate: io.accumulate(n.x),
      };
      if (n.op === "leakyrelu") return planLeakyRelu(ctx, { ...args, alpha: n.alpha });
      return (n.op === "silu" ? planSilu : n.op === "sigmoid" ? planSigmoid : planRelu)(ctx, args);
    }
    case "add":
    case "mul": {
      if (n.a === n.b) throw new Error(`program: ${n.name} uses '${n.a}' twice, which is not supported`);
      const dc = io.grad(n.y);
      return (n.op === "add" ? planAdd : planMul)(ctx, {
        a: io.value(n.a),
        b: io.value(n.b),
        c: io.value(n.y),
        dc,
        da: dc && io.grad(n.a),
        db: dc && io.grad(n.b),
        accumulateA: io.accumulate(n.a),
        accumulateB: io.accumulate(n.b),
      });
    }
    case "concat":
    case "slice":
      // Placement makes these views (program_memory.ts): nothing to compute either way.
      return EMPTY;
    default:
      throw new Error(`program: no GPU kernel planned for ${n.op} (${n.name}) yet`);
  }
}
