import { type Letterbox, roundHalfEven } from "../image/letterbox.ts";
import { type Candidate, nms } from "./nms.ts";

export interface DetectOptions {
  conf: number;
  iou: number;
  maxDet: number;
  /** Keep only these class ids (YOLOv5's `classes` filter); all when absent. */
  classes?: number[];
}

export const DEFAULT_DETECT_OPTIONS: DetectOptions = { conf: 0.25, iou: 0.45, maxDet: 300 };

export interface Detection {
  classId: number;
  confidence: number;
  /** Original-image pixels, clipped to the image and rounded like detect.py. */
  box: { x1: number; y1: number; x2: number; y2: number };
}

/**
 * Candidates from a (1, N, 5+nc) YOLOv5 output: rows whose objectness is above `conf`, scored obj × best class
 * (first maximum on ties, as torch.max on CPU), kept when that score is above `conf` too; boxes as xyxy.
 */
export function candidates(output: Float32Array, nc: number, opts: DetectOptions): Candidate[] {
  const no = 5 + nc;
  const rows = output.length / no;
  const allowed = opts.classes ? new Set(opts.classes) : undefined;
  const out: Candidate[] = [];
  for (let r = 0, o = 0; r < rows; r++, o += no) {
    const obj = output[o + 4];
    if (!(obj > opts.conf)) continue;
    let best = 0;
    let bestScore = output[o + 5];
    for (let k = 1; k < nc; k++) {
      if (output[o + 5 + k] > bestScore) bestScore = output[o + 5 + k], best = k;
    }
    const score = Math.fround(bestScore * obj);
    if (!(score > opts.conf) || (allowed && !allowed.has(best))) continue;
    const cx = output[o], cy = output[o + 1], hw = output[o + 2] / 2, hh = output[o + 3] / 2;
    // xywh2xyxy on a float32 tensor: NMS then sees the boxes torch does
    const [x1, y1, x2, y2] = [cx - hw, cy - hh, cx + hw, cy + hh].map(Math.fround);
    out.push({ x1, y1, x2, y2, score, classId: best });
  }
  return out;
}

/**
 * scale_boxes (docs/training.md §7.4): undo the padding and gain, clip to the image, round as detect.py
 * prints them.
 */
export function toOriginal(c: Candidate, box: Letterbox, width: number, height: number): Detection {
  const gain = Math.min(box.size / height, box.size / width);
  const padX = (box.size - width * gain) / 2;
  const padY = (box.size - height * gain) / 2;
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
  const map = (v: number, pad: number, hi: number) => roundHalfEven(clip((v - pad) / gain, hi));
  return {
    classId: c.classId,
    confidence: c.score,
    box: {
      x1: map(c.x1, padX, width),
      y1: map(c.y1, padY, height),
      x2: map(c.x2, padX, width),
      y2: map(c.y2, padY, height),
    },
  };
}

/** The whole of YOLOv5's post-processing for one image. */
export function postprocess(
  output: Float32Array,
  nc: number,
  opts: DetectOptions,
  box: Letterbox,
  width: number,
  height: number,
): Detection[] {
  return nms(candidates(output, nc, opts), opts.iou, opts.maxDet).map((c) =>
    toOriginal(c, box, width, height)
  );
}
