/**
 * A fresh, untrained YOLOv5 (v7.0 P5 architecture at any depth/width multiple) written as an ONNX graph of the
 * same form as an ultralytics `export.py --opset 12` export of a fused model: same nodes and node names, same
 * initializer names and order, Detect decode with constant grids, `stride` and `names` metadata. Everything that
 * reads exports (serving, the trainer's graph import) therefore takes it as is, so models can be trained from
 * scratch. `unfused: true` keeps each Conv's BatchNorm2d as its own BatchNormalization node instead.
 *
 * @example
 * ```ts
 * const bytes = newModelBytes({ nc: 3, names: ["circle", "square", "triangle"], depth: 0.33, width: 0.25, imgsz: 320 });
 * await Deno.writeFile("shapes.onnx", bytes);
 * ```
 * @module
 */
import { OnnxModel } from "../onnx/model.ts";
import {
  type LayerSpec,
  scaledDepth,
  scaledWidth,
  YOLOV5_ANCHORS,
  YOLOV5_P5,
  YOLOV5_STRIDES,
} from "./new_model/architecture.ts";
import { detect } from "./new_model/detect.ts";
import { GraphBuilder, onnx } from "./new_model/graph_builder.ts";
import { SeededRandom } from "./new_model/init.ts";
import {
  applyConv,
  type BuildContext,
  c3,
  concat,
  declareConv,
  sppf,
  upsample,
} from "./new_model/modules.ts";

export interface NewModelOptions {
  /** number of classes */
  nc: number;
  /** class names (default `class0`, `class1`, ... as ultralytics names an unnamed dataset) */
  names?: string[];
  /** depth_multiple (yolov5n/s 0.33, m 0.67, l 1.0, x 1.33) */
  depth: number;
  /** width_multiple (yolov5n 0.25, s 0.5, m 0.75, l 1.0, x 1.25) */
  width: number;
  /** square input size of the exported graph, a multiple of the largest stride (32) */
  imgsz: number;
  /** weight-init seed (default 0) */
  seed?: number;
  /** keep every Conv's BatchNorm2d (Conv, BatchNormalization, SiLU) as an unfused export has it, e.g. to train
   * with batch statistics from scratch; default false (fused, as export.py writes) */
  unfused?: boolean;
}

const INPUT_CHANNELS = 3;
const OPSET = 12;
/** ONNX IR version torch 1.13 writes for opset 12. */
const IR_VERSION = 7;

/** `str(dict)` of the names as Python prints it: export.py stores that repr, and loaders `eval` it. */
export function pythonNamesRepr(names: readonly string[]): string {
  const repr = (s: string) => {
    const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
    const body = s.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll("\r", "\\r").replaceAll(
      "\t",
      "\\t",
    );
    return quote + (quote === "'" ? body.replaceAll("'", "\\'") : body) + quote;
  };
  return `{${names.map((n, i) => `${i}: ${repr(n)}`).join(", ")}}`;
}

function validate(opts: NewModelOptions): string[] {
  const maxStride = Math.max(...YOLOV5_STRIDES);
  if (!Number.isInteger(opts.nc) || opts.nc < 1) {
    throw new RangeError(`nc must be an integer >= 1, got ${opts.nc}`);
  }
  if (!(opts.depth > 0) || !(opts.width > 0)) {
    throw new RangeError(
      `depth and width multiples must be > 0, got depth ${opts.depth}, width ${opts.width}`,
    );
  }
  if (!Number.isInteger(opts.imgsz) || opts.imgsz < maxStride || opts.imgsz % maxStride !== 0) {
    throw new RangeError(`imgsz must be a positive multiple of ${maxStride}, got ${opts.imgsz}`);
  }
  const names = opts.names ?? Array.from({ length: opts.nc }, (_, i) => `class${i}`);
  if (names.length !== opts.nc) {
    throw new RangeError(`got ${names.length} class names (${names.join(",")}) for nc ${opts.nc}`);
  }
  return names;
}

function valueInfo(name: string, dims: number[]) {
  return onnx.ValueInfoProto.create({
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => ({ dimValue: d })) },
      },
    },
  });
}

/** Emit one yaml row; returns its output value name and channel count (parse_model's `c2`). */
function emitLayer(
  ctx: BuildContext,
  opts: NewModelOptions,
  i: number,
  spec: LayerSpec,
  outs: string[],
  ch: number[],
): [string, number] {
  const x = outs[i - 1] ?? "images";
  const c1 = ch[i - 1] ?? INPUT_CHANNELS;
  const at = (f: number) => (f === -1 ? i - 1 : f);
  switch (spec.module) {
    case "Conv": {
      const c2 = scaledWidth(spec.c2, opts.width);
      const conv = declareConv(ctx, `model.${i}`, c1, c2, spec.k);
      return [applyConv(ctx, `/model.${i}`, conv, x, spec.s, spec.p), c2];
    }
    case "C3": {
      const c2 = scaledWidth(spec.c2, opts.width);
      return [c3(ctx, i, x, c1, c2, scaledDepth(spec.n, opts.depth), spec.shortcut), c2];
    }
    case "SPPF": {
      const c2 = scaledWidth(spec.c2, opts.width);
      return [sppf(ctx, i, x, c1, c2, spec.k), c2];
    }
    case "Upsample":
      return [upsample(ctx, i, x), c1];
    case "Concat":
      return [
        concat(ctx, i, spec.from.map((f) => outs[at(f)])),
        spec.from.reduce((s, f) => s + ch[at(f)], 0),
      ];
    case "Detect": {
      const from = spec.from.map(at);
      const detectSpec = {
        layer: i,
        nc: opts.nc,
        imgsz: opts.imgsz,
        strides: YOLOV5_STRIDES,
        anchors: YOLOV5_ANCHORS,
      };
      return [detect(ctx, detectSpec, from.map((f) => outs[f]), from.map((f) => ch[f])), opts.nc + 5];
    }
  }
}

/** Build the fresh model and encode it as ONNX bytes. */
export function newModelBytes(opts: NewModelOptions): Uint8Array {
  const names = validate(opts);
  const ctx: BuildContext = {
    graph: new GraphBuilder(),
    rng: new SeededRandom(opts.seed ?? 0),
    unfused: opts.unfused ?? false,
  };
  const outs: string[] = [];
  const ch: number[] = [];
  YOLOV5_P5.forEach((spec, i) => {
    const [out, c2] = emitLayer(ctx, opts, i, spec, outs, ch);
    outs.push(out);
    ch.push(c2);
  });
  const rows = YOLOV5_STRIDES.reduce(
    (s, st, l) => s + (YOLOV5_ANCHORS[l].length / 2) * (opts.imgsz / st) ** 2,
    0,
  );
  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    producerName: "kestrel new-model",
    opsetImport: [{ domain: "", version: OPSET }],
    graph: onnx.GraphProto.create({
      name: "torch_jit",
      node: ctx.graph.nodes,
      initializer: ctx.graph.initializers,
      input: [valueInfo("images", [1, INPUT_CHANNELS, opts.imgsz, opts.imgsz])],
      output: [valueInfo(outs[outs.length - 1], [1, rows, opts.nc + 5])],
    }),
    metadataProps: [
      { key: "stride", value: String(Math.max(...YOLOV5_STRIDES)) },
      { key: "names", value: pythonNamesRepr(names) },
    ],
  });
  const out = onnx.ModelProto.encode(model).finish();
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** {@link newModelBytes} decoded as an {@link OnnxModel}. */
export function newModel(opts: NewModelOptions): OnnxModel {
  return OnnxModel.parse(newModelBytes(opts));
}
