/**
 * `deno run -A scripts/eval_model.ts MODEL.onnx DATA_DIR [--imgsz N]`: val.py's metrics of an exported model as
 * serving runs it (onnxruntime-node on the ONNX graph's decoded output), on every image of a YOLO-layout dataset,
 * through the project's evaluator (src/train/evaluate.ts). Prints one JSON object. The default model's card
 * (models/README.md) quotes its output on a held-out synthetic set.
 */
import { parseArgs } from "node:util";
import * as ort from "onnxruntime-node";
import { OnnxModel } from "../src/onnx/model.ts";
import { inspectYolo } from "../src/onnx/yolo.ts";
import { loadDataset } from "../src/train/data/dataset.ts";
import { BatchLoader } from "../src/train/data/loader.ts";
import { evaluate } from "../src/train/evaluate.ts";

const USAGE =
  "Usage: deno run -A scripts/eval_model.ts MODEL.onnx DATA_DIR [--imgsz N (default: the model's)]";
/** Images per loader batch; the export's batch axis is 1, so the session still runs them one by one. */
const BATCH = 16;

async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { imgsz: { type: "string" } },
    allowPositionals: true,
  });
  const [modelPath, dataDir] = positionals;
  if (!modelPath || !dataDir || positionals.length > 2) {
    console.error(USAGE);
    return 2;
  }
  const bytes = await Deno.readFile(modelPath);
  const info = inspectYolo(OnnxModel.parse(bytes));
  const imgsz = values.imgsz ? Number(values.imgsz) : info.inputHeight;
  if (!imgsz || !Number.isInteger(imgsz) || imgsz % info.stride !== 0) {
    console.error(
      `eval_model: '${modelPath}' needs --imgsz, a multiple of ${info.stride} (got ${imgsz})\n${USAGE}`,
    );
    return 2;
  }
  const dataset = await loadDataset(dataDir, { nc: info.nc });
  const samples = [...dataset.train, ...dataset.val];
  const session = await ort.InferenceSession.create(bytes);
  const plane = 3 * imgsz * imgsz;
  const forward = async (images: Float32Array, size: number) => {
    const decoded: Float32Array[] = [];
    for (let i = 0; i < size; i++) {
      const input = new ort.Tensor("float32", images.slice(i * plane, (i + 1) * plane), [1, 3, imgsz, imgsz]);
      const out = (await session.run({ [info.inputName]: input }))[info.outputName];
      decoded.push(out.data as Float32Array);
    }
    return { decoded };
  };
  const loader = new BatchLoader(samples, { imgsz, batchSize: BATCH, shuffle: false, augment: false });
  const started = performance.now();
  const m = await evaluate(forward, loader.epoch(), {
    nc: info.nc,
    strides: info.strides,
    anchors: info.anchors,
  });
  await session.release();
  const perClass = Object.fromEntries(
    Object.entries(m.perClass).map(([c, ap]) => [info.names[+c] ?? c, { map50: ap.ap50, map50_95: ap.ap }]),
  );
  console.log(JSON.stringify({
    model: modelPath,
    data: dataDir,
    imgsz,
    images: m.images,
    labels: m.labels,
    precision: m.P,
    recall: m.R,
    map50: m.map50,
    map50_95: m.map,
    per_class: perClass,
    seconds: (performance.now() - started) / 1000,
  }));
  return 0;
}

Deno.exit(await main(Deno.args));
