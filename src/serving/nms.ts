import { greedyNms, MAX_NMS, MAX_WH } from "../geometry/nms_core.ts";

export { MAX_NMS, MAX_WH };

/** A candidate box in input pixels (x1, y1, x2, y2) with its score and class. */
export interface Candidate {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
  classId: number;
}

/**
 * Class-aware NMS as YOLOv5's non_max_suppression runs it: sort by score (descending), keep at most MAX_NMS,
 * and let each kept box suppress later boxes of its class whose IoU is strictly above `iouThres` (IoU without
 * +1 or eps, in torchvision's float32 arithmetic: see src/geometry/nms_core.ts, which evaluation shares).
 * Returns at most `maxDet` candidates, best first.
 */
export function nms(
  candidates: Candidate[],
  iouThres: number,
  maxDet: number,
  agnostic = false,
): Candidate[] {
  const sorted = [...candidates].sort((a, b) => b.score - a.score).slice(0, MAX_NMS);
  const xyxy = new Float64Array(sorted.length * 4);
  sorted.forEach((c, i) => xyxy.set([c.x1, c.y1, c.x2, c.y2], 4 * i));
  const classes = sorted.map((c) => c.classId);
  return greedyNms(xyxy, classes, agnostic ? 0 : MAX_WH, iouThres, maxDet).map((i) => sorted[i]);
}
