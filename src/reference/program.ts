/**
 * Plain TypeScript forward + ComputeLoss + backward of a training IR (src/onnx/graph.ts) in float64: the
 * reference the GPU training program is tested against on small models. BatchNorm runs in train mode (batch
 * statistics, running statistics updated). Tests only; slow by design.
 * @module
 */
import type { IrNode, TrainGraph } from "../onnx/graph.ts";
import type { OnnxModel } from "../onnx/model.ts";
import type { LossSettings } from "../train/loss_settings.ts";
import type { LossLayer, TargetRows } from "../train/targets.ts";
import { batchNormBackward, batchNormForward, type BnShape } from "./ops/batchnorm.ts";
import { convBackward, convForward, type ConvShape } from "./ops/conv.ts";
import { type Detached, referenceLoss } from "./loss.ts";

type Arr = Float64Array;

export interface ReferenceStep {
  /** Head conv outputs (bs, na*no, ny, nx). */
  heads: Arr[];
  items: [number, number, number];
  loss: number;
  /** dLoss/dparam by initializer name. */
  grads: Map<string, Arr>;
  /** BatchNorm running statistics after this forward (train mode), by initializer name. */
  buffers: Map<string, Arr>;
  detached: Detached;
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

function maxpoolArgmax(
  x: Arr,
  [n, c, h, w]: number[],
  k: number,
  s: number,
  p: number,
  ho: number,
  wo: number,
) {
  const arg = new Int32Array(n * c * ho * wo);
  for (let nc = 0; nc < n * c; nc++) {
    for (let oy = 0; oy < ho; oy++) {
      for (let ox = 0; ox < wo; ox++) {
        let best = -Infinity, at = -1;
        for (let ky = 0; ky < k; ky++) {
          const iy = oy * s - p + ky;
          if (iy < 0 || iy >= h) continue;
          for (let kx = 0; kx < k; kx++) {
            const ix = ox * s - p + kx;
            if (ix < 0 || ix >= w) continue;
            const i = (nc * h + iy) * w + ix;
            if (x[i] > best) [best, at] = [x[i], i]; // strict >: the first maximum wins, as in PyTorch
          }
        }
        arg[(nc * ho + oy) * wo + ox] = at;
      }
    }
  }
  return arg;
}

/** Runs `graph` on `images` with the model's initializers; `layers` give the loss grids and anchors. */
export function referenceStep(
  model: OnnxModel,
  graph: TrainGraph,
  shapes: Map<string, number[]>,
  images: Float32Array,
  targets: TargetRows,
  layers: LossLayer[],
  settings: LossSettings,
  /** Evaluate the loss at these (bs, na*no, ny, nx) heads instead of the computed ones (backward unchanged). */
  lossAt?: ArrayLike<number>[],
  /** Hold the loss's detached quantities at these values (finite differences). */
  fixed?: Detached,
): ReferenceStep {
  const v = new Map<string, Arr>([[graph.input, Float64Array.from(images)]]);
  const param = (name: string) => model.getInitializer(name).data;
  const pools = new Map<string, Int32Array>();
  const convShape = (n: Extract<IrNode, { op: "conv" }>): ConvShape => {
    const [b, cin, h, w] = shapes.get(n.x)!;
    const [cout, , kh, kw] = model.getInitializer(n.weight).dims;
    return { n: b, cin, h, w, cout, kh, kw, stride: n.stride, pad: n.pad };
  };
  const hwOf = (t: string) => shapes.get(t)![2] * shapes.get(t)![3];
  const bnShape = (t: string): BnShape => ({ n: shapes.get(t)![0], c: shapes.get(t)![1], plane: hwOf(t) });
  const buffers = new Map<string, Arr>();
  for (const n of graph.nodes) {
    const shape = shapes.get(n.y)!;
    const size = shape.reduce((a, b) => a * b, 1);
    let y: Arr;
    switch (n.op) {
      case "conv":
        y = convForward(convShape(n), v.get(n.x)!, param(n.weight), n.bias ? param(n.bias) : undefined);
        break;
      case "batchnorm": {
        const running = { mean: param(n.mean), variance: param(n.variance), momentum: n.momentum };
        const r = batchNormForward(bnShape(n.x), v.get(n.x)!, param(n.scale), param(n.bias), n.eps, running);
        y = r.y;
        buffers.set(n.mean, r.runMean);
        buffers.set(n.variance, r.runVar);
        break;
      }
      case "silu":
        y = v.get(n.x)!.map((x) => x * sigmoid(x));
        break;
      case "sigmoid":
        y = v.get(n.x)!.map(sigmoid);
        break;
      case "relu":
        y = v.get(n.x)!.map((x) => Math.max(x, 0));
        break;
      case "leakyrelu":
        y = v.get(n.x)!.map((x) => (x >= 0 ? x : n.alpha * x));
        break;
      case "add":
      case "mul": {
        const a = v.get(n.a)!, b = v.get(n.b)!;
        y = a.map((x, i) => (n.op === "add" ? x + b[i] : x * b[i]));
        break;
      }
      case "concat":
      case "slice":
        y = new Float64Array(size);
        channelCopy(n, v, y, shapes, hwOf, false);
        break;
      case "maxpool": {
        const arg = maxpoolArgmax(
          v.get(n.x)!,
          shapes.get(n.x)!,
          n.kernel,
          n.stride,
          n.pad,
          shape[2],
          shape[3],
        );
        pools.set(n.y, arg);
        const x = v.get(n.x)!;
        y = Float64Array.from(arg, (i) => x[i]);
        break;
      }
      case "resize2x": {
        const x = v.get(n.x)!, [, , h, w] = shape;
        y = new Float64Array(size);
        for (let i = 0; i < size; i++) {
          const nc = Math.floor(i / (h * w)), r = Math.floor((i % (h * w)) / w), c = i % w;
          y[i] = x[(nc * (h / 2) + (r >> 1)) * (w / 2) + (c >> 1)];
        }
        break;
      }
    }
    v.set(n.y, y);
  }

  const bs = shapes.get(graph.input)![0];
  const heads = graph.heads.map((h) => v.get(h)!);
  const na = layers[0].anchors.length, no = settings.nc + 5;
  const permuted = (lossAt ?? heads).map((h, i) =>
    permute(h, bs, na, no, layers[i].ny * layers[i].nx, false)
  );
  const r = referenceLoss(permuted, bs, layers, targets, settings, fixed);

  const g = new Map<string, Arr>();
  heads.forEach((_, i) =>
    g.set(graph.heads[i], permute(r.grads[i], bs, na, no, layers[i].ny * layers[i].nx, true))
  );
  const grads = new Map<string, Arr>();
  const addGrad = (t: string, d: Arr) => {
    const prev = g.get(t);
    g.set(t, prev ? prev.map((x, i) => x + d[i]) : d);
  };
  for (const n of [...graph.nodes].reverse()) {
    const dy = g.get(n.y);
    if (!dy) continue;
    switch (n.op) {
      case "conv": {
        const d = convBackward(convShape(n), v.get(n.x)!, param(n.weight), dy);
        grads.set(n.weight, d.dw);
        if (n.bias) grads.set(n.bias, d.db);
        addGrad(n.x, d.dx);
        break;
      }
      case "batchnorm": {
        const d = batchNormBackward(bnShape(n.x), v.get(n.x)!, param(n.scale), dy, n.eps);
        grads.set(n.scale, d.dgamma);
        grads.set(n.bias, d.dbeta);
        addGrad(n.x, d.dx);
        break;
      }
      case "silu":
        addGrad(n.x, v.get(n.x)!.map((x, i) => dy[i] * sigmoid(x) * (1 + x * (1 - sigmoid(x)))));
        break;
      case "sigmoid":
        addGrad(n.x, v.get(n.y)!.map((s, i) => dy[i] * s * (1 - s)));
        break;
      case "relu":
        addGrad(n.x, v.get(n.x)!.map((x, i) => (x > 0 ? dy[i] : 0)));
        break;
      case "leakyrelu":
        addGrad(n.x, v.get(n.x)!.map((x, i) => (x > 0 ? dy[i] : n.alpha * dy[i])));
        break;
      case "add":
        addGrad(n.a, dy);
        addGrad(n.b, dy);
        break;
      case "mul":
        addGrad(n.a, dy.map((d, i) => d * v.get(n.b)![i]));
        addGrad(n.b, dy.map((d, i) => d * v.get(n.a)![i]));
        break;
      case "concat":
      case "slice": {
        const parts = new Map<string, Arr>();
        channelCopy(n, parts, dy, shapes, hwOf, true);
        for (const [t, d] of parts) addGrad(t, d);
        break;
      }
      case "maxpool": {
        const dx = new Float64Array(v.get(n.x)!.length);
        pools.get(n.y)!.forEach((src, i) => (dx[src] += dy[i]));
        addGrad(n.x, dx);
        break;
      }
      case "resize2x": {
        const [, , h, w] = shapes.get(n.y)!;
        const dx = new Float64Array(v.get(n.x)!.length);
        dy.forEach((d, i) => {
          const nc = Math.floor(i / (h * w)), r = Math.floor((i % (h * w)) / w), c = i % w;
          dx[(nc * (h / 2) + (r >> 1)) * (w / 2) + (c >> 1)] += d;
        });
        addGrad(n.x, dx);
        break;
      }
    }
  }
  return { heads, items: r.items, loss: r.loss, grads, buffers, detached: r.detached };
}

/** Concat (inputs -> y) or Slice (x -> y) along channels; `backward` moves y's data back into the inputs. */
function channelCopy(
  n: IrNode,
  parts: Map<string, Arr>,
  y: Arr,
  shapes: Map<string, number[]>,
  hwOf: (t: string) => number,
  backward: boolean,
) {
  const [bs, cy] = shapes.get(n.y)!;
  const hw = hwOf(n.y);
  const pieces: [string, number, number][] = n.op === "concat"
    ? n.xs.map((x, k) => [x, n.xs.slice(0, k).reduce((s, t) => s + shapes.get(t)![1], 0), 0])
    : n.op === "slice"
    ? [[n.x, 0, n.start]]
    : [];
  for (const [t, yStart, xStart] of pieces) {
    const cx = shapes.get(t)![1];
    const count = n.op === "slice" ? cy : cx;
    if (backward && !parts.has(t)) parts.set(t, new Float64Array(bs * cx * hw));
    const x = parts.get(t)!;
    for (let b = 0; b < bs; b++) {
      for (let c = 0; c < count; c++) {
        for (let i = 0; i < hw; i++) {
          const yi = ((b * cy) + yStart + c) * hw + i, xi = ((b * cx) + xStart + c) * hw + i;
          if (backward) x[xi] += y[yi];
          else y[yi] = x[xi];
        }
      }
    }
  }
}

/** (bs, na*no, hw) <-> (bs, na, hw, no). */
function permute(h: ArrayLike<number>, bs: number, na: number, no: number, hw: number, toConv: boolean): Arr {
  const out = new Float64Array(h.length);
  for (let b = 0; b < bs; b++) {
    for (let a = 0; a < na; a++) {
      for (let f = 0; f < no; f++) {
        for (let s = 0; s < hw; s++) {
          const conv = ((b * na + a) * no + f) * hw + s, loss = ((b * na + a) * hw + s) * no + f;
          if (toConv) out[conv] = h[loss];
          else out[loss] = h[conv];
        }
      }
    }
  }
  return out;
}
