/**
 * val.py's evaluation loop: batches of letterboxed images -> model forward (raw head logits, decoded here, or
 * already decoded rows) -> val NMS -> predictions and labels rescaled to each image's native pixels
 * (scale_boxes with the letterbox's ratio and float pad, clipped) -> process_batch -> ap_per_class.
 *
 * One deliberate difference from train.py's val: images are letterboxed to the training imgsz square (the program
 * is built for one input shape, and shared/golden/val-yolov5n-320 is defined at 320), where train.py's val loader
 * uses rect batch shapes ceil(shape·imgsz/32 + 0.5)·32 (pad 0.5), e.g. 352 for square images at 320.
 */
import { decodeHeads, type HeadLayer, type HeadSpec } from "./evaluate_decode.ts";
import { type NmsOptions, nonMaxSuppression, VAL_NMS } from "./evaluate_nms.ts";
import type { Batch } from "./data/loader.ts";
import {
  apPerClass,
  type Detection,
  type ImageStats,
  imageStats,
  type LabelBox,
  type ValMetrics,
} from "./metrics.ts";

/** Runs the model on a (size, 3, imgsz, imgsz) batch: raw head logits per layer, or decoded rows per image. */
export type Forward = (
  images: Float32Array,
  batchSize: number,
) => Promise<{ heads: readonly HeadLayer[] } | { decoded: readonly Float32Array[] }>;

const f = Math.fround;

/** Evaluates `forward` over validation batches (from a BatchLoader with augment off). */
export async function evaluate(
  forward: Forward,
  batches: AsyncIterable<Batch>,
  spec: HeadSpec,
  nms: NmsOptions = VAL_NMS,
): Promise<ValMetrics> {
  const stats: ImageStats[] = [];
  for await (const batch of batches) {
    const out = await forward(batch.images, batch.size);
    const decoded = "heads" in out ? decodeHeads(out.heads, spec, batch.size) : out.decoded;
    const imgsz = Math.round(Math.sqrt(batch.images.length / (3 * batch.size)));
    for (let i = 0; i < batch.size; i++) {
      const box = batch.letterboxes[i];
      if (!box) {
        throw new Error(`evaluate: batch image ${batch.samples[i].name} is a mosaic; use augment: false`);
      }
      const { width: w0, height: h0 } = batch.samples[i];
      const toNative = scaleBoxes(box.height / h0, (imgsz - box.width) / 2, (imgsz - box.height) / 2, w0, h0);
      const dets = nonMaxSuppression(decoded[i], spec.nc, nms).map((
        d,
      ): Detection => [...toNative(d), d[4], d[5]]);
      const labels = batchLabels(batch.targets, i, imgsz).map(([c, ...b]): LabelBox => [c, ...toNative(b)]);
      stats.push(imageStats(dets, labels));
    }
  }
  return apPerClass(stats);
}

/** val.py: `targets[:, 2:] *= (w, h, w, h)` then xywh2xyxy, in float32: [cls, x1, y1, x2, y2] pixel rows of image i. */
export function batchLabels(targets: Float32Array, image: number, imgsz: number): LabelBox[] {
  const out: LabelBox[] = [];
  for (let o = 0; o < targets.length; o += 6) {
    if (targets[o] !== image) continue;
    const [x, y, w, h] = [1, 2, 3, 4].map((k) => f(targets[o + 1 + k] * imgsz));
    out.push([targets[o + 1], f(x - f(w / 2)), f(y - f(h / 2)), f(x + f(w / 2)), f(y + f(h / 2))]);
  }
  return out;
}

/** scale_boxes with ratio_pad: subtract the pad, divide by the gain, clip to the native image (float32). */
export function scaleBoxes(gain: number, padX: number, padY: number, w0: number, h0: number) {
  const [g, px, py] = [f(gain), f(padX), f(padY)];
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  return (b: readonly number[]): [number, number, number, number] => [
    clip(f(f(b[0] - px) / g), w0),
    clip(f(f(b[1] - py) / g), h0),
    clip(f(f(b[2] - px) / g), w0),
    clip(f(f(b[3] - py) / g), h0),
  ];
}
