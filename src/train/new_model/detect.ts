/**
 * YOLOv5's Detect head in export form (docs/training.md §7.1, §9.2): per level a 1x1 conv with bias, then the
 * decode subgraph torch.onnx traces with export=True — Reshape (1, na, no, ny, nx), Transpose(0,1,3,4,2),
 * Sigmoid, Split [2, 2, nc+1] on axis 4; xy = (2·y + grid) · stride, wh = (2·y)^2 · anchor_grid; Concat;
 * Reshape (1, na·ny·nx, no) — and the levels concatenated on axis 1 into `output0`. Grid, anchor_grid, stride
 * and shapes are Constant nodes, as the export folds them.
 * @module
 */
import { floatTensor, int64Tensor } from "./graph_builder.ts";
import { detectConvInit } from "./init.ts";
import type { BuildContext } from "./modules.ts";

/** The head's geometry: one entry per level, P3 first. */
export interface DetectSpec {
  layer: number;
  nc: number;
  imgsz: number;
  strides: readonly number[];
  /** pixel anchors per level, (w, h) pairs */
  anchors: readonly (readonly number[])[];
}

/** `_make_grid`: grid = (x - 0.5, y - 0.5), anchor_grid = pixel anchors, both (1, na, ny, nx, 2). */
export function makeGrid(
  anchors: readonly number[],
  nx: number,
  ny: number,
): { grid: Float32Array; anchorGrid: Float32Array } {
  const na = anchors.length / 2;
  const grid = new Float32Array(na * ny * nx * 2);
  const anchorGrid = new Float32Array(na * ny * nx * 2);
  for (let a = 0; a < na; a++) {
    for (let y = 0; y < ny; y++) {
      for (let x = 0; x < nx; x++) {
        const i = ((a * ny + y) * nx + x) * 2;
        grid[i] = x - 0.5;
        grid[i + 1] = y - 0.5;
        anchorGrid[i] = anchors[2 * a];
        anchorGrid[i + 1] = anchors[2 * a + 1];
      }
    }
  }
  return { grid, anchorGrid };
}

/** Declare the head convs' initializers (`model.24.m.{i}.weight|bias`) and emit the decode; returns `output0`. */
export function detect(ctx: BuildContext, spec: DetectSpec, inputs: string[], channels: number[]): string {
  const { graph } = ctx;
  const no = spec.nc + 5;
  const convs = inputs.map((_, i) => {
    const na = spec.anchors[i].length / 2;
    const { weight, bias } = detectConvInit(ctx.rng, channels[i], na, spec.nc, spec.strides[i]);
    const prefix = `model.${spec.layer}.m.${i}`;
    return {
      weight: graph.initializer(`${prefix}.weight`, [na * no, channels[i], 1, 1], weight),
      bias: graph.initializer(`${prefix}.bias`, [na * no], bias),
    };
  });
  const scope = `/model.${spec.layer}`;
  const scalar = (v: number) => graph.constant(scope, floatTensor("", [], new Float32Array([v])));
  const levels = inputs.map((x, i) => {
    const na = spec.anchors[i].length / 2;
    const ny = spec.imgsz / spec.strides[i];
    const nx = ny;
    const conv = graph.op(`${scope}/m.${i}`, "Conv", [x, convs[i].weight, convs[i].bias], {
      dilations: [1, 1],
      group: { int: 1 },
      kernel_shape: [1, 1],
      pads: [0, 0, 0, 0],
      strides: [1, 1],
    });
    const raw = graph.op(scope, "Reshape", [
      conv,
      graph.constant(scope, int64Tensor("", [1, na, no, ny, nx])),
    ]);
    const t = graph.op(scope, "Transpose", [raw], { perm: [0, 1, 3, 4, 2] });
    const y = graph.op(scope, "Sigmoid", [t]);
    const [xy, wh, conf] = graph.node(
      scope,
      "Split",
      [y],
      { axis: { int: 4 }, split: [2, 2, spec.nc + 1] },
      3,
    );
    const { grid, anchorGrid } = makeGrid(spec.anchors[i], nx, ny);
    const xy2 = graph.op(scope, "Mul", [xy, scalar(2)]);
    const xyGrid = graph.op(scope, "Add", [
      xy2,
      graph.constant(scope, floatTensor("", [1, na, ny, nx, 2], grid)),
    ]);
    const xyOut = graph.op(scope, "Mul", [xyGrid, scalar(spec.strides[i])]);
    const wh2 = graph.op(scope, "Mul", [wh, scalar(2)]);
    const whSq = graph.op(scope, "Pow", [wh2, scalar(2)]);
    const anchorConst = graph.constant(scope, floatTensor("", [1, na, ny, nx, 2], anchorGrid));
    const whOut = graph.op(scope, "Mul", [whSq, anchorConst]);
    const cat = graph.op(scope, "Concat", [xyOut, whOut, conf], { axis: { int: 4 } });
    return graph.op(scope, "Reshape", [cat, graph.constant(scope, int64Tensor("", [1, na * ny * nx, no]))]);
  });
  return graph.node(scope, "Concat", levels, { axis: { int: 1 } }, ["output0"])[0];
}
