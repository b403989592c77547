/** A candidate box in input pixels (x1, y1, x2, y2) with its score and class. */
export interface Candidate {
  x1: number;
  y1: number;
  x2: number;
  y2: number;
  score: number;
  classId: number;
}

/** YOLOv5's max_wh: the per-class offset that makes one NMS call class-aware (spec §7.3 step 7). */
export const MAX_WH = 7680;
/** YOLOv5's max_nms: candidates beyond this many (by score) are dropped before NMS. */
export const MAX_NMS = 30000;

/**
 * Greedy class-aware NMS as YOLOv5's non_max_suppression runs it: sort by score (descending), keep at most
 * MAX_NMS, and let each kept box suppress later boxes of its class whose IoU is strictly above `iouThres`
 * (IoU without +1 or eps). Boxes are offset by classId·MAX_WH in float32 like torchvision sees them, so
 * near-threshold decisions round the same way; since offset boxes of different classes never overlap, each
 * class is suppressed on its own, which keeps a low-`conf` request from costing (all boxes)². Returns at most
 * `maxDet` candidates, best first.
 */
export function nms(
  candidates: Candidate[],
  iouThres: number,
  maxDet: number,
  agnostic = false,
): Candidate[] {
  const sorted = [...candidates].sort((a, b) => b.score - a.score).slice(0, MAX_NMS);
  const byClass = new Map<number, Candidate[]>();
  for (const c of sorted) {
    const key = agnostic ? 0 : c.classId;
    const group = byClass.get(key);
    if (group) group.push(c);
    else byClass.set(key, [c]);
  }
  const kept = [...byClass.values()].flatMap((group) => greedy(group, iouThres, maxDet, agnostic));
  return kept.sort((a, b) => b.score - a.score).slice(0, maxDet);
}

/** Greedy suppression within one class, `group` sorted by descending score. */
function greedy(group: Candidate[], iouThres: number, maxDet: number, agnostic: boolean): Candidate[] {
  const n = group.length;
  const boxes = new Float32Array(n * 4);
  const areas = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const c = group[i];
    const off = agnostic ? 0 : c.classId * MAX_WH;
    boxes.set([c.x1 + off, c.y1 + off, c.x2 + off, c.y2 + off], i * 4);
    areas[i] = (boxes[i * 4 + 2] - boxes[i * 4]) * (boxes[i * 4 + 3] - boxes[i * 4 + 1]);
  }
  const suppressed = new Uint8Array(n);
  const kept: Candidate[] = [];
  for (let i = 0; i < n && kept.length < maxDet; i++) {
    if (suppressed[i]) continue;
    kept.push(group[i]);
    const [ax1, ay1, ax2, ay2] = boxes.subarray(i * 4, i * 4 + 4);
    for (let j = i + 1; j < n; j++) {
      if (suppressed[j]) continue;
      const w = Math.min(ax2, boxes[j * 4 + 2]) - Math.max(ax1, boxes[j * 4]);
      const h = Math.min(ay2, boxes[j * 4 + 3]) - Math.max(ay1, boxes[j * 4 + 1]);
      if (w <= 0 || h <= 0) continue;
      const inter = w * h;
      if (inter / (areas[i] + areas[j] - inter) > iouThres) suppressed[j] = 1;
    }
  }
  return kept;
}
