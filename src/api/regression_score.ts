/**
 * Scores an ONNX model on a YOLO dataset on the serving backend (CPU, off the trainer): decode, letterbox as
 * detect does, run, val.py's NMS (conf 0.001, IoU 0.6, multi-label), mAP@0.5 and mAP@0.5:0.95 over every image.
 * The forgetting guard compares the base and a fine-tune's result this way on the same images, so both see the
 * same preprocessing; the numbers are close to, not identical with, the trainer's own evaluation.
 */
import { decodeImage } from "../image/decode.ts";
import { letterbox } from "../image/letterbox.ts";
import type { EvalMetrics } from "../train/trainer.ts";
import type { Backend } from "../serving/backend.ts";
import { LoadedModel } from "../serving/loaded_model.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import { loadDataset } from "../train/data/dataset.ts";
import { scaleBoxes } from "../train/evaluate.ts";
import { nonMaxSuppression } from "../train/evaluate_nms.ts";
import { apPerClass, type Detection, type ImageStats, imageStats, type LabelBox } from "../train/metrics.ts";

export async function scoreOnDataset(
  backend: Backend,
  onnx: Uint8Array,
  dir: string,
  nc: number,
): Promise<EvalMetrics> {
  const spec = readModelSpec(onnx, "the model to score");
  const model = await LoadedModel.create({ name: "regression-score", version: 0 }, spec, backend, onnx);
  try {
    const set = await loadDataset(dir, { nc });
    const stats: ImageStats[] = [];
    for (const sample of [...set.train, ...set.val]) {
      const image = await decodeImage(await Deno.readFile(sample.imagePath));
      const { tensor, box } = letterbox(image, spec.imgsz);
      const output = await model.infer(tensor);
      const toNative = scaleBoxes(box.width / image.width, box.left, box.top, image.width, image.height);
      const dets = nonMaxSuppression(output.data, spec.nc).map((
        d,
      ): Detection => [...toNative(d), d[4], d[5]]);
      const labels: LabelBox[] = [];
      for (let o = 0; o < sample.labels.length; o += 5) {
        const [c, cx, cy, w, h] = sample.labels.slice(o, o + 5);
        const [x1, x2] = [(cx - w / 2) * image.width, (cx + w / 2) * image.width];
        const [y1, y2] = [(cy - h / 2) * image.height, (cy + h / 2) * image.height];
        labels.push([c, x1, y1, x2, y2]);
      }
      stats.push(imageStats(dets, labels));
    }
    const metrics = apPerClass(stats);
    return { map50: metrics.map50, map50_95: metrics.map50_95 };
  } finally {
    await model.retire();
  }
}
