// A miniature YOLOv5 Detect head as ONNX, built like export.py's graph (docs/training.md §9.2): per layer a
// 1x1 Conv (here straight on the image, strided so the grid matches the layer stride) -> Reshape (1, na, no,
// ny, nx) -> Transpose -> Sigmoid -> Split [2, 2, nc+1] -> xy (*2 + grid) * stride, wh (*2)^2 * anchor_grid
// -> Concat -> Reshape (1, na*ny*nx, no); layers concatenated. onnxruntime runs it in well under a
// millisecond, so registry and serving tests can load many versions of it.
import { encodeModel, floatTensor, node, onnx, valueInfo } from "./_models.ts";

const INT64 = onnx.TensorProto.DataType.INT64;
const { INT, INTS, TENSOR } = onnx.AttributeProto.AttributeType;

export interface TinyYoloOptions {
  nc?: number;
  imgsz?: number;
  strides?: number[];
  /** Pixel anchors per layer, [w0, h0, w1, h1, w2, h2]. */
  anchors?: number[][];
  /** How constants are stored: Constant nodes (torch export), initializers (onnxsim), or [1,na,1,1,2] + Expand. */
  constants?: "constant" | "initializer" | "expand";
  /** Symbolic batch/height/width axes like export --dynamic. */
  dynamic?: boolean;
  /** `names` metadata; null leaves it out. Defaults to a dict of class0..class{nc-1}. */
  names?: string | null;
  /** Varies the weights so each seed gives a different file (and sha256). */
  seed?: number;
}

export const TINY_ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [
  116,
  90,
  156,
  198,
  373,
  326,
]];

export function tinyYolo(opts: TinyYoloOptions = {}): Uint8Array<ArrayBuffer> {
  const { nc = 2, imgsz = 32, strides = [8, 16, 32], anchors = TINY_ANCHORS, constants = "constant" } = opts;
  const na = 3;
  const no = nc + 5;
  const seed = opts.seed ?? 1;
  const nodes: ReturnType<typeof node>[] = [];
  const initializers: ReturnType<typeof floatTensor>[] = [];
  const layerOutputs: string[] = [];
  let rows = 0;
  const constant = (name: string, dims: number[], values: number[]) => {
    if (constants === "constant") {
      nodes.push({
        opType: "Constant",
        output: [name],
        name,
        attribute: [{ name: "value", type: TENSOR, t: floatTensor(name, dims, values) }],
      });
    } else initializers.push(floatTensor(name, dims, values));
  };
  const shape = (name: string, values: number[]) => {
    initializers.push({ name, dims: [values.length], dataType: INT64, int64Data: values });
  };
  strides.forEach((s, i) => {
    const ny = imgsz / s;
    const p = `model.24.m.${i}`;
    const w = Array.from({ length: na * no * 3 }, (_, k) => Math.sin(seed * 7.1 + k * 0.37 + i) * 0.5);
    const b = Array.from({ length: na * no }, (_, k) => Math.cos(seed * 3.3 + k * 0.51 + i) - 1);
    initializers.push(
      floatTensor(`${p}.weight`, [na * no, 3, 1, 1], w),
      floatTensor(`${p}.bias`, [na * no], b),
    );
    const conv = node("Conv", ["images", `${p}.weight`, `${p}.bias`], [`/m.${i}/conv`]);
    conv.attribute = [{ name: "kernel_shape", type: INTS, ints: [1, 1] }, {
      name: "strides",
      type: INTS,
      ints: [s, s],
    }];
    shape(`shape5_${i}`, [1, na, no, ny, ny]);
    const transpose = node("Transpose", [`/m.${i}/r5`], [`/m.${i}/t`]);
    transpose.attribute = [{ name: "perm", type: INTS, ints: [0, 1, 3, 4, 2] }];
    const split = node("Split", [`/m.${i}/sig`], [`/m.${i}/xy`, `/m.${i}/wh`, `/m.${i}/conf`]);
    split.attribute = [{ name: "axis", type: INT, i: 4 }, {
      name: "split",
      type: INTS,
      ints: [2, 2, nc + 1],
    }];
    const grid = [];
    for (let a = 0; a < na; a++) {
      for (let y = 0; y < ny; y++) for (let x = 0; x < ny; x++) grid.push(x - 0.5, y - 0.5);
    }
    constant(`two_${i}`, [], [2]);
    constant(`grid_${i}`, [1, na, ny, ny, 2], grid);
    constant(`stride_${i}`, [], [s]);
    const anchorName = `anchor_grid_${i}`;
    if (constants === "expand") {
      constant(`anchors_${i}`, [1, na, 1, 1, 2], anchors[i]);
      shape(`expand_shape_${i}`, [1, na, ny, ny, 2]);
      nodes.push(node("Expand", [`anchors_${i}`, `expand_shape_${i}`], [anchorName]));
    } else {
      const full = [];
      for (let a = 0; a < na; a++) {
        for (let c = 0; c < ny * ny; c++) full.push(anchors[i][2 * a], anchors[i][2 * a + 1]);
      }
      constant(anchorName, [1, na, ny, ny, 2], full);
    }
    shape(`shape3_${i}`, [1, na * ny * ny, no]);
    const concat = node("Concat", [`/m.${i}/xy3`, `/m.${i}/wh3`, `/m.${i}/conf`], [`/m.${i}/cat`]);
    concat.attribute = [{ name: "axis", type: INT, i: 4 }];
    nodes.push(
      conv,
      node("Reshape", [`/m.${i}/conv`, `shape5_${i}`], [`/m.${i}/r5`]),
      transpose,
      node("Sigmoid", [`/m.${i}/t`], [`/m.${i}/sig`]),
      split,
      node("Mul", [`/m.${i}/xy`, `two_${i}`], [`/m.${i}/xy1`]),
      node("Add", [`/m.${i}/xy1`, `grid_${i}`], [`/m.${i}/xy2`]),
      node("Mul", [`/m.${i}/xy2`, `stride_${i}`], [`/m.${i}/xy3`]),
      node("Mul", [`/m.${i}/wh`, `two_${i}`], [`/m.${i}/wh1`]),
      node("Pow", [`/m.${i}/wh1`, `two_${i}`], [`/m.${i}/wh2`]),
      node("Mul", [`/m.${i}/wh2`, anchorName], [`/m.${i}/wh3`]),
      concat,
      node("Reshape", [`/m.${i}/cat`, `shape3_${i}`], [`/m.${i}/out`]),
    );
    layerOutputs.push(`/m.${i}/out`);
    rows += na * ny * ny;
  });
  const cat = node("Concat", layerOutputs, ["output0"]);
  cat.attribute = [{ name: "axis", type: INT, i: 1 }];
  nodes.push(cat);
  const names = opts.names === undefined
    ? `{${Array.from({ length: nc }, (_, i) => `${i}: 'class${i}'`).join(", ")}}`
    : opts.names;
  const dyn = opts.dynamic;
  return encodeModel({
    nodes,
    inputs: [valueInfo("images", dyn ? ["batch", 3, "height", "width"] : [1, 3, imgsz, imgsz])],
    outputs: [valueInfo("output0", dyn ? ["batch", "anchors", no] : [1, rows, no])],
    initializers,
    metadata: names === null
      ? { stride: String(Math.max(...strides)) }
      : { stride: String(Math.max(...strides)), names },
  });
}
