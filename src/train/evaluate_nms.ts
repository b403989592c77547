/**
 * val.py's `non_max_suppression` (spec §7.3): objectness pre-filter, cls·obj confidences, multi-label candidates,
 * per-class NMS through the max_wh coordinate offset, strict IoU >, max_det. Float32 arithmetic mirrors torch and
 * torchvision's CPU kernel (the offset boxes are rounded to float32 too, as they are there). Sorting is stable.
 */
import type { Detection } from "./metrics.ts";

export interface NmsOptions {
  /** val.py: 0.001 */
  confThres: number;
  /** val.py: 0.6 */
  iouThres: number;
  /** val.py: true (one candidate per class above confThres); false keeps only the best class */
  multiLabel: boolean;
  /** val.py: 300 */
  maxDet: number;
  agnostic: boolean;
}

export const VAL_NMS: NmsOptions = {
  confThres: 0.001,
  iouThres: 0.6,
  multiLabel: true,
  maxDet: 300,
  agnostic: false,
};
const MAX_WH = 7680;
const MAX_NMS = 30000;
const f = Math.fround;

/**
 * One image's decoded predictions (rows × (5 + nc): cx, cy, w, h, obj, cls...) -> detections
 * `[x1, y1, x2, y2, conf, cls]` in NMS keep order (confidence descending).
 */
export function nonMaxSuppression(pred: Float32Array, nc: number, opts: NmsOptions = VAL_NMS): Detection[] {
  const no = nc + 5;
  // torch compares a float32 tensor with a Python float in float32; torchvision's IoU test is float vs double
  const confThres = f(opts.confThres);
  const cand: Detection[] = [];
  for (let o = 0; o < pred.length; o += no) {
    const obj = pred[o + 4];
    if (!(obj > confThres)) continue;
    const [cx, cy, w, h] = [pred[o], pred[o + 1], pred[o + 2], pred[o + 3]];
    const box = [f(cx - f(w / 2)), f(cy - f(h / 2)), f(cx + f(w / 2)), f(cy + f(h / 2))] as const;
    if (opts.multiLabel && nc > 1) {
      for (let c = 0; c < nc; c++) {
        const conf = f(pred[o + 5 + c] * obj);
        if (conf > confThres) cand.push([...box, conf, c]);
      }
    } else {
      let best = 0;
      for (let c = 1; c < nc; c++) if (f(pred[o + 5 + c] * obj) > f(pred[o + 5 + best] * obj)) best = c;
      const conf = f(pred[o + 5 + best] * obj);
      if (conf > confThres) cand.push([...box, conf, best]);
    }
  }
  cand.sort((a, b) => b[4] - a[4]);
  cand.length = Math.min(cand.length, MAX_NMS);
  const keep = greedyNms(cand, opts.agnostic ? 0 : MAX_WH, opts.iouThres);
  return keep.slice(0, opts.maxDet).map((i) => cand[i]);
}

/**
 * torchvision `nms` over boxes offset by cls·offset; `dets` sorted by confidence descending. Returns kept indices.
 * The IoU is float32 (torchvision's scalar_t) compared with the double threshold, so an IoU of exactly 0.6 is
 * float32(0.6) = 0.60000002 and IS suppressed at iou 0.6; src/serving/nms.ts divides in double and keeps it.
 */
export function greedyNms(dets: readonly Detection[], offset: number, iouThres: number): number[] {
  const n = dets.length;
  const boxes = new Float32Array(n * 4);
  const areas = new Float32Array(n);
  dets.forEach((d, i) => {
    const c = f(d[5] * offset);
    for (let k = 0; k < 4; k++) boxes[4 * i + k] = f(d[k] + c);
    areas[i] = f(f(boxes[4 * i + 2] - boxes[4 * i]) * f(boxes[4 * i + 3] - boxes[4 * i + 1]));
  });
  const suppressed = new Uint8Array(n);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    if (suppressed[i]) continue;
    keep.push(i);
    for (let j = i + 1; j < n; j++) {
      if (suppressed[j]) continue;
      const w = Math.max(
        0,
        f(Math.min(boxes[4 * i + 2], boxes[4 * j + 2]) - Math.max(boxes[4 * i], boxes[4 * j])),
      );
      const h = Math.max(
        0,
        f(Math.min(boxes[4 * i + 3], boxes[4 * j + 3]) - Math.max(boxes[4 * i + 1], boxes[4 * j + 1])),
      );
      const inter = f(w * h);
      if (f(inter / f(f(areas[i] + areas[j]) - inter)) > iouThres) suppressed[j] = 1;
    }
  }
  return keep;
}
