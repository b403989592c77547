/**
 * YOLOv5's common.py modules (Conv, C3, SPPF, Upsample, Concat) emitted as the ONNX nodes a fused export has,
 * or, for an unfused model, with each Conv's BatchNorm2d kept (Conv without bias, BatchNormalization, SiLU) as
 * torch.onnx writes a model exported without fusing.
 *
 * Parameters are declared in PyTorch's module-registration order (C3: cv1, cv2, cv3, m.*), because that is the
 * order of the export's initializers and of a trainer's flat parameter buffer; nodes follow forward order
 * (C3: cv1, m.*, cv2, Concat, cv3). Scopes follow torch.onnx: an nn.Sequential that is called gets its own
 * scope (`/model.2/m/m.0`), a module called three times gets `m`, `m_1`, `m_2`.
 * @module
 */
import { floatTensor, type GraphBuilder } from "./graph_builder.ts";
import {
  batchNormInit,
  BN_EPS,
  BN_MOMENTUM,
  convWeightInit,
  fusedConvInit,
  type SeededRandom,
} from "./init.ts";

/** What every module emitter needs: the graph under construction and the init stream. */
export interface BuildContext {
  graph: GraphBuilder;
  rng: SeededRandom;
  /** keep each Conv's BatchNorm2d instead of fusing it into the conv */
  unfused?: boolean;
}

/** A declared `Conv` (conv + BN, fused or not, + SiLU): its initializer names and geometry. */
export interface ConvParams {
  weight: string;
  /** the fused conv bias; null when the BN is kept */
  bias: string | null;
  /** BatchNorm2d initializers (scale, B, running mean, running var) of an unfused Conv */
  bn: string[] | null;
  k: number;
}

/**
 * Declare a k x k Conv from c1 to c2 channels with fresh init: `${prefix}.conv.weight|bias` fused, or
 * `${prefix}.conv.weight` and `${prefix}.bn.weight|bias|running_mean|running_var` unfused (registration order).
 */
export function declareConv(
  ctx: BuildContext,
  prefix: string,
  c1: number,
  c2: number,
  k: number,
): ConvParams {
  const dims: [number, number, number, number] = [c2, c1, k, k];
  const g = ctx.graph;
  if (ctx.unfused) {
    const weight = g.initializer(`${prefix}.conv.weight`, dims, convWeightInit(ctx.rng, dims));
    const bn = batchNormInit(c2);
    const bnNames = [
      g.initializer(`${prefix}.bn.weight`, [c2], bn.weight),
      g.initializer(`${prefix}.bn.bias`, [c2], bn.bias),
      g.initializer(`${prefix}.bn.running_mean`, [c2], bn.runningMean),
      g.initializer(`${prefix}.bn.running_var`, [c2], bn.runningVar),
    ];
    return { weight, bias: null, bn: bnNames, k };
  }
  const { weight, bias } = fusedConvInit(ctx.rng, dims);
  return {
    weight: g.initializer(`${prefix}.conv.weight`, dims, weight),
    bias: g.initializer(`${prefix}.conv.bias`, [c2], bias),
    bn: null,
    k,
  };
}

/**
 * Conv (with the fused bias, or followed by its BatchNormalization) then SiLU as export writes it: Sigmoid and
 * Mul. ONNX's BN momentum keeps that share of the old statistic: 1 - PyTorch's. `p` defaults to autopad k//2.
 */
export function applyConv(
  ctx: BuildContext,
  scope: string,
  conv: ConvParams,
  x: string,
  s = 1,
  p = Math.floor(conv.k / 2),
): string {
  const c = ctx.graph.op(
    `${scope}/conv`,
    "Conv",
    conv.bias ? [x, conv.weight, conv.bias] : [x, conv.weight],
    {
      dilations: [1, 1],
      group: { int: 1 },
      kernel_shape: [conv.k, conv.k],
      pads: [p, p, p, p],
      strides: [s, s],
    },
  );
  const y = conv.bn
    ? ctx.graph.op(`${scope}/bn`, "BatchNormalization", [c, ...conv.bn], {
      epsilon: { float: BN_EPS },
      momentum: { float: 1 - BN_MOMENTUM },
    })
    : c;
  const sig = ctx.graph.op(`${scope}/act`, "Sigmoid", [y]);
  return ctx.graph.op(`${scope}/act`, "Mul", [y, sig]);
}

/** C3 (CSP bottleneck, 3 convs) of layer `layer`: c1 -> c2 with n bottlenecks of width c2/2. */
export function c3(
  ctx: BuildContext,
  layer: number,
  x: string,
  c1: number,
  c2: number,
  n: number,
  shortcut: boolean,
): string {
  const prefix = `model.${layer}`;
  const c = Math.floor(c2 * 0.5);
  const cv1 = declareConv(ctx, `${prefix}.cv1`, c1, c, 1);
  const cv2 = declareConv(ctx, `${prefix}.cv2`, c1, c, 1);
  const cv3 = declareConv(ctx, `${prefix}.cv3`, 2 * c, c2, 1);
  const m = Array.from({ length: n }, (_, k) => ({
    cv1: declareConv(ctx, `${prefix}.m.${k}.cv1`, c, c, 1),
    cv2: declareConv(ctx, `${prefix}.m.${k}.cv2`, c, c, 3),
  }));
  const scope = `/model.${layer}`;
  let a = applyConv(ctx, `${scope}/cv1`, cv1, x);
  m.forEach((b, k) => {
    const bScope = `${scope}/m/m.${k}`;
    const h = applyConv(ctx, `${bScope}/cv2`, b.cv2, applyConv(ctx, `${bScope}/cv1`, b.cv1, a));
    a = shortcut ? ctx.graph.op(bScope, "Add", [a, h]) : h;
  });
  const b = applyConv(ctx, `${scope}/cv2`, cv2, x);
  return applyConv(ctx, `${scope}/cv3`, cv3, concat(ctx, layer, [a, b]));
}

/** SPPF: cv1 to c1/2 channels, three chained k x k stride-1 max pools, concat of all four, cv2 to c2. */
export function sppf(ctx: BuildContext, layer: number, x: string, c1: number, c2: number, k: number): string {
  const prefix = `model.${layer}`;
  const c = Math.floor(c1 / 2);
  const cv1 = declareConv(ctx, `${prefix}.cv1`, c1, c, 1);
  const cv2 = declareConv(ctx, `${prefix}.cv2`, c * 4, c2, 1);
  const scope = `/model.${layer}`;
  const pad = Math.floor(k / 2);
  const ys = [applyConv(ctx, `${scope}/cv1`, cv1, x)];
  for (const mScope of ["m", "m_1", "m_2"]) {
    ys.push(ctx.graph.op(`${scope}/${mScope}`, "MaxPool", [ys[ys.length - 1]], {
      ceil_mode: { int: 0 },
      kernel_shape: [k, k],
      pads: [pad, pad, pad, pad],
      strides: [1, 1],
    }));
  }
  return applyConv(ctx, `${scope}/cv2`, cv2, concat(ctx, layer, ys));
}

/** nn.Upsample(scale_factor=2, mode='nearest') as opset 12 Resize with constant scales and an empty roi. */
export function upsample(ctx: BuildContext, layer: number, x: string): string {
  const scope = `/model.${layer}`;
  const scales = ctx.graph.constant(scope, floatTensor("", [4], new Float32Array([1, 1, 2, 2])));
  const roi = ctx.graph.constant(scope, floatTensor("", [0], new Float32Array(0)));
  return ctx.graph.op(scope, "Resize", [x, roi, scales], {
    coordinate_transformation_mode: "asymmetric",
    cubic_coeff_a: { float: -0.75 },
    mode: "nearest",
    nearest_mode: "floor",
  });
}

/** Concat along channels, in the scope of the module that concatenates. */
export function concat(ctx: BuildContext, layer: number, xs: string[]): string {
  return ctx.graph.op(`/model.${layer}`, "Concat", xs, { axis: { int: 1 } });
}
