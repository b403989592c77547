/**
 * The tiny test export unfused (Conv, BatchNormalization, SiLU), with its BatchNorm parameters and running
 * statistics drawn at random so that train mode, eval mode and every BN gradient are far from the fresh-init
 * special case (gamma 1, beta 0, mean 0, var 1); plus onnxruntime-node cut at the head convs for it.
 */
import * as ort from "../../src/serving/backends/ort_native.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { cutAtOutputs } from "./_ort_heads.ts";
import { tinyModel } from "./_tiny_model.ts";

export function tinyBnModel(nc: number, imgsz: number, seed = 1): OnnxModel {
  const model = tinyModel(nc, imgsz, seed, true);
  const rnd = mulberry32(seed + 100);
  const draw = (name: string, f: () => number) =>
    model.setInitializer(name, model.getInitializer(name).data.map(f));
  for (const n of model.graph.node.filter((n) => n.opType === "BatchNormalization")) {
    draw(n.input[1], () => 0.5 + rnd());
    draw(n.input[2], () => rnd() - 0.5);
    draw(n.input[3], () => (rnd() - 0.5) * 0.2);
    draw(n.input[4], () => 0.5 + rnd());
  }
  return model;
}

/** The raw head conv outputs (1, na*no, ny, nx) of one image from onnxruntime-node (eval-mode BatchNorm). */
export async function ortRawHeads(
  model: OnnxModel,
  heads: string[],
  image: Float32Array,
  imgsz: number,
): Promise<Float32Array[]> {
  const copy = OnnxModel.parse(model.toBytes());
  const graph = copy.graph;
  cutAtOutputs(copy, heads);
  const session = await ort.InferenceSession.create(copy.toBytes());
  try {
    const out = await session.run({
      [graph.input[0].name]: new ort.Tensor("float32", image, [1, 3, imgsz, imgsz]),
    });
    return heads.map((h) => out[h].data as Float32Array);
  } finally {
    await session.release();
  }
}
