/**
 * A very small YOLOv5-form export for program tests: Conv/SiLU, a C3 (shortcut Add + Concat) and a 3-level Detect
 * head in export form, with neither SPPF nor Upsample, so it needs only conv, silu, add and concat kernels.
 * `unfused` keeps each Conv's BatchNormalization (fresh BN init), as `new-model --unfused` writes it.
 */
import { GraphBuilder, onnx } from "../../src/train/new_model/graph_builder.ts";
import { SeededRandom } from "../../src/train/new_model/init.ts";
import { applyConv, type BuildContext, c3, declareConv } from "../../src/train/new_model/modules.ts";
import { detect } from "../../src/train/new_model/detect.ts";
import { OnnxModel } from "../../src/onnx/model.ts";

const STRIDES = [8, 16, 32];
const ANCHORS = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]];

export function tinyModel(nc: number, imgsz: number, seed = 1, unfused = false): OnnxModel {
  const ctx: BuildContext = { graph: new GraphBuilder(), rng: new SeededRandom(seed), unfused };
  const conv = (i: number, x: string, c1: number, c2: number, k: number, s: number) =>
    applyConv(ctx, `/model.${i}`, declareConv(ctx, `model.${i}`, c1, c2, k), x, s);
  const x1 = conv(0, "images", 3, 8, 3, 2);
  const x2 = conv(1, x1, 8, 8, 3, 2);
  const x3 = c3(ctx, 2, x2, 8, 8, 1, true);
  const p3 = conv(3, x3, 8, 8, 3, 2);
  const p4 = conv(4, p3, 8, 16, 3, 2);
  const p5 = conv(5, p4, 16, 16, 3, 2);
  const out = detect(ctx, { layer: 6, nc, imgsz, strides: STRIDES, anchors: ANCHORS }, [p3, p4, p5], [
    8,
    16,
    16,
  ]);
  const rows = STRIDES.reduce((s, st) => s + 3 * (imgsz / st) ** 2, 0);
  const info = (name: string, dims: number[]) =>
    onnx.ValueInfoProto.create({
      name,
      type: { tensorType: { elemType: 1, shape: { dim: dims.map((d) => ({ dimValue: d })) } } },
    });
  const model = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: "", version: 12 }],
    graph: onnx.GraphProto.create({
      name: "tiny",
      node: ctx.graph.nodes,
      initializer: ctx.graph.initializers,
      input: [info("images", [1, 3, imgsz, imgsz])],
      output: [info(out, [1, rows, nc + 5])],
    }),
    metadataProps: [{ key: "stride", value: "32" }, { key: "names", value: "{0: 'a', 1: 'b', 2: 'c'}" }],
  });
  return OnnxModel.parse(onnx.ModelProto.encode(model).finish());
}
