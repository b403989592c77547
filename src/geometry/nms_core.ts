/**
 * The box IoU and greedy suppression of torchvision's `nms` CPU kernel, which YOLOv5's `non_max_suppression`
 * calls in detect.py and val.py alike. Serving (src/serving/nms.ts) and evaluation (src/train/evaluate_nms.ts)
 * both run this one core, so a box at the threshold is kept or dropped the same way in both. A leaf module:
 * it imports nothing, so every layer may import it.
 *
 * The kernel's arithmetic is float32 (its scalar_t) at every step: the class-offset boxes, areas, intersection,
 * union and IoU are each rounded to float32, and only the comparison with the threshold is in double. So an
 * IoU of exactly 0.6 is float32(0.6) = 0.60000002 and IS suppressed at iou_thres 0.6.
 * @module
 */

/**
 * YOLOv5's max_wh: boxes are offset by class·MAX_WH so one NMS call keeps classes apart (docs/training.md
 * §7.3 step 6).
 */
export const MAX_WH = 7680;
/** YOLOv5's max_nms: candidates beyond this many (by score) are dropped before NMS. */
export const MAX_NMS = 30000;

const f = Math.fround;

/**
 * Greedy NMS over `n` boxes sorted by score descending: `xyxy` holds (x1, y1, x2, y2) per box, `classes` the
 * class of each. Boxes are offset by class·`offset` (YOLOv5: MAX_WH, or 0 for class-agnostic NMS) in float32
 * as `x[:, :4] + c` is in torch; each kept box suppresses the later ones whose IoU is strictly above
 * `iouThres`. Returns the kept indices in score order, at most `maxKeep`.
 *
 * With an offset, boxes of different classes never overlap (coordinates stay far below MAX_WH), so each class
 * is suppressed on its own: the same result as one pass over every box, without costing (all boxes)² when a
 * low confidence threshold lets thousands of candidates through.
 */
export function greedyNms(
  xyxy: ArrayLike<number>,
  classes: ArrayLike<number>,
  offset: number,
  iouThres: number,
  maxKeep = Infinity,
): number[] {
  const byClass = new Map<number, number[]>();
  for (let i = 0; i < classes.length; i++) {
    const key = offset === 0 ? 0 : classes[i];
    const group = byClass.get(key);
    if (group) group.push(i);
    else byClass.set(key, [i]);
  }
  const kept = [...byClass.values()].flatMap((group) =>
    suppress(xyxy, classes, group, offset, iouThres, maxKeep)
  );
  return kept.sort((a, b) => a - b).slice(0, maxKeep);
}

/** torchvision's greedy loop over one class's boxes (`group`: indices in score order). */
function suppress(
  xyxy: ArrayLike<number>,
  classes: ArrayLike<number>,
  group: number[],
  offset: number,
  iouThres: number,
  maxKeep: number,
): number[] {
  const n = group.length;
  const boxes = new Float32Array(n * 4);
  const areas = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const src = group[i];
    const c = f(classes[src] * offset);
    for (let k = 0; k < 4; k++) boxes[4 * i + k] = f(xyxy[4 * src + k] + c);
    areas[i] = f(f(boxes[4 * i + 2] - boxes[4 * i]) * f(boxes[4 * i + 3] - boxes[4 * i + 1]));
  }
  const suppressed = new Uint8Array(n);
  const kept: number[] = [];
  for (let i = 0; i < n && kept.length < maxKeep; i++) {
    if (suppressed[i]) continue;
    kept.push(group[i]);
    const [ax1, ay1, ax2, ay2] = boxes.subarray(4 * i, 4 * i + 4);
    for (let j = i + 1; j < n; j++) {
      if (suppressed[j]) continue;
      const w = Math.max(0, f(Math.min(ax2, boxes[4 * j + 2]) - Math.max(ax1, boxes[4 * j])));
      const h = Math.max(0, f(Math.min(ay2, boxes[4 * j + 3]) - Math.max(ay1, boxes[4 * j + 1])));
      const inter = f(w * h);
      if (f(inter / f(f(areas[i] + areas[j]) - inter)) > iouThres) suppressed[j] = 1;
    }
  }
  return kept;
}
