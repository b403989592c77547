/**
 * Runs an ultralytics YOLOv5 export with onnxruntime-node, cut at the three Detect-head convs, at any square size:
 * the backbone is fully convolutional, so dropping the head's fixed-shape Reshape/decode nodes lets the 640 export
 * produce the raw logits at 320. The result is laid out (bs, na, ny, nx, no) like the training program's heads.
 */
import * as onnxProtoModule from "onnx-proto";
import * as ort from "../../src/serving/backends/ort_native.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import type { HeadLayer } from "../../src/train/evaluate_decode.ts";

const { onnx } = (onnxProtoModule as unknown as { default: typeof onnxProtoModule }).default;

export interface OrtHeads {
  run(image: Float32Array): Promise<HeadLayer[]>;
}

/** Keeps only the nodes `outputs` depend on and makes `outputs` the graph's outputs (their shapes left open). */
export function cutAtOutputs(model: OnnxModel, outputs: string[]): void {
  const graph = model.graph;
  const needed = new Set(outputs);
  const kept = [];
  for (const node of [...graph.node].reverse()) {
    if (!node.output.some((o) => needed.has(o))) continue;
    kept.unshift(node);
    for (const i of node.input) needed.add(i);
  }
  graph.node = kept;
  graph.output = outputs.map((name) =>
    onnx.ValueInfoProto.create({ name }) as unknown as typeof graph.output[0]
  );
  graph.valueInfo = [];
}

export async function ortHeads(modelPath: string, imgsz: number, na = 3): Promise<OrtHeads> {
  const model = OnnxModel.parse(await Deno.readFile(modelPath));
  const graph = model.graph;
  const heads = [0, 1, 2].map((i) =>
    graph.node.find((n) => n.opType === "Conv" && n.input[1] === `model.24.m.${i}.weight`)!.output[0]
  );
  cutAtOutputs(model, heads);
  const dims = graph.input[0].type!.tensorType!.shape!.dim;
  dims[2].dimValue = imgsz;
  dims[3].dimValue = imgsz;
  const session = await ort.InferenceSession.create(model.toBytes());
  return {
    async run(image) {
      const out = await session.run({
        [graph.input[0].name]: new ort.Tensor("float32", image, [1, 3, imgsz, imgsz]),
      });
      return heads.map((name) => {
        const t = out[name];
        const [, c, ny, nx] = t.dims as number[];
        const no = c / na;
        const src = t.data as Float32Array;
        // (1, na*no, ny, nx) -> (1, na, ny, nx, no), as Detect's view + permute does
        const data = new Float32Array(src.length);
        for (let a = 0; a < na; a++) {
          for (let k = 0; k < no; k++) {
            for (let p = 0; p < ny * nx; p++) {
              data[(a * ny * nx + p) * no + k] = src[((a * no + k) * ny * nx) + p];
            }
          }
        }
        return { data, ny, nx };
      });
    },
  };
}
