/**
 * val.py's `non_max_suppression` (docs/training.md §7.3): objectness pre-filter, cls·obj confidences,
 * multi-label candidates, per-class NMS through the max_wh coordinate offset, strict IoU >, max_det. Float32
 * arithmetic mirrors torch; the suppression is torchvision's CPU kernel in src/geometry/nms_core.ts, shared
 * with serving. Sorting is stable.
 */
import { greedyNms, MAX_NMS, MAX_WH } from "../geometry/nms_core.ts";
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
  const keep = greedyNms(
    cand.flatMap((d) => d.slice(0, 4)),
    cand.map((d) => d[5]),
    opts.agnostic ? 0 : MAX_WH,
    opts.iouThres,
    opts.maxDet,
  );
  return keep.map((i) => cand[i]);
}
