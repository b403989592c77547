/**
 * One IR node -> the op kernels' plan (src/ops): which views each op reads and writes, and which gradients it
 * produces (dx only where upstream needs it, dw/db only for trainable parameters).
 * @module
 */
import type { IrNode } from "../onnx/graph.ts";
import { planLeakyRelu, planRelu, planSigmoid, planSilu } from "../ops/activation.ts";
import { planAdd, planMul } from "../ops/binary.ts";
import { planBatchNorm } from "../ops/batchnorm.ts";
import { channelSlice, planConcat } from "../ops/concat.ts";
import { planConv } from "../ops/conv.ts";
import { planMaxPool } from "../ops/maxpool.ts";
import { planResizeNearest } from "../ops/resize.ts";
import type { OpContext, OpPlan, TensorView } from "../ops/types.ts";

/** What a node's plan is given; `grad(x)` is undefined where no gradient is wanted. */
export interface NodeIo {
  value(t: string): TensorView;
  /** gradient of a data tensor, if backward needs it */
  grad(t: string): TensorView | undefined;
  /** the channels of `t`'s gradient that are read, where not all are (program_memory.ts readGradientChannels) */
  readChannels?(t: string): { start: number; count: number } | undefined;
  /** true when this node's gradient write into `t` must add to what is there */
  accumulate(t: string): boolean;
  param(name: string): TensorView;
  /** amp: the parameter in the f16 copy of the params the convs' GEMMs read (absent: f32 operands) */
  halfParam?(name: string): TensorView;
  /** a BatchNorm running statistic in the flat buffers buffer; needed by graphs with BatchNormalization */
  buffer?(name: string): TensorView;
  /** false in a forward-only program: BatchNorm normalises with its running statistics (default true) */
  training?: boolean;
  /** convs share their im2col scratch and rebuild it in backward (planConv's recomputeColumns) */
  recomputeColumns?: boolean;
  /** gradient view of a trainable, unfrozen parameter */
  paramGrad(name: string): TensorView | undefined;
  /** true for a Concat input that has its own buffer and must be copied into the Concat's */
  copied(t: string): boolean;
  /** a conv's: the output of the SiLU fused into it (program_fusion.ts), which the conv's kernels compute */
  siluAfter?: string;
}

/** An op's plan; `setCount` where the op's result depends on how many batch items are real (BatchNorm). */
export type NodePlan = OpPlan & { setCount?(count: number): void };

const EMPTY: OpPlan = { forward: [], backward: [] };

export function planNode(ctx: OpContext, n: IrNode, io: NodeIo): NodePlan {
  switch (n.op) {
    case "conv": {
      const dy = io.grad(n.y);
      return planConv(ctx, {
        x: io.value(n.x),
        w: io.param(n.weight),
        halfWeights: io.halfParam?.(n.weight),
        b: n.bias ? io.param(n.bias) : undefined,
        y: io.value(n.y),
        dy,
        dx: dy && io.grad(n.x),
        dxChannels: io.readChannels?.(n.x),
        dw: dy && io.paramGrad(n.weight),
        db: dy && n.bias ? io.paramGrad(n.bias) : undefined,
        stride: n.stride,
        pad: n.pad,
        dilation: n.dilation,
        groups: n.groups,
        accumulate: io.accumulate(n.x),
        recomputeColumns: io.recomputeColumns,
        silu: io.siluAfter ? { y: io.value(io.siluAfter), dy: dy && io.grad(io.siluAfter) } : undefined,
      });
    }
    case "batchnorm": {
      if (!io.buffer) throw new Error(`program: ${n.name} (BatchNormalization) needs running-stat buffers`);
      const dy = io.grad(n.y);
      return planBatchNorm(ctx, {
        x: io.value(n.x),
        y: io.value(n.y),
        gamma: io.param(n.scale),
        beta: io.param(n.bias),
        runningMean: io.buffer(n.mean),
        runningVar: io.buffer(n.variance),
        eps: n.eps,
        momentum: n.momentum,
        training: io.training ?? true,
        dy,
        dx: dy && io.grad(n.x),
        dgamma: dy && io.paramGrad(n.scale),
        dbeta: dy && io.paramGrad(n.bias),
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
    case "maxpool": {
      const dy = io.grad(n.y);
      return planMaxPool(ctx, {
        x: io.value(n.x),
        y: io.value(n.y),
        kernel: n.kernel,
        stride: n.stride,
        pad: n.pad,
        dy,
        dx: dy && io.grad(n.x),
        accumulate: io.accumulate(n.x),
      });
    }
    case "resize2x": {
      const dy = io.grad(n.y);
      return planResizeNearest(ctx, {
        x: io.value(n.x),
        y: io.value(n.y),
        scaleY: 2,
        scaleX: 2,
        dy,
        dx: dy && io.grad(n.x),
        accumulate: io.accumulate(n.x),
      });
    }
    case "concat": {
      // Inputs placed in the Concat's buffer cost nothing; the others are copied into their channel slice.
      const plan: OpPlan = { forward: [], backward: [] };
      let c0 = 0;
      for (const x of n.xs) {
        const v = io.value(x), c = v.shape[1];
        if (io.copied(x)) {
          const dy = io.grad(n.y);
          const part = planConcat(ctx, {
            inputs: [v],
            y: channelSlice(io.value(n.y), c0, c),
            dy: dy && channelSlice(dy, c0, c),
            dinputs: [dy && io.grad(x)],
            accumulate: [io.accumulate(x)],
          });
          plan.forward.push(...part.forward);
          plan.backward.push(...part.backward);
        }
        c0 += c;
      }
      return plan;
    }
    case "slice":
      // A view of its source (program_memory.ts): nothing to compute either way.
      return EMPTY;
  }
}
