import assert from "node:assert/strict";
import { greedyNms, MAX_WH } from "../../src/geometry/nms_core.ts";
import { nms } from "../../src/serving/nms.ts";
import { nonMaxSuppression, VAL_NMS } from "../../src/train/evaluate_nms.ts";

const f = Math.fround;

/**
 * torchvision's nms_cpu_kernel written out as it reads: one pass over every box (classes kept apart only by
 * the offset), float32 at each arithmetic step, the IoU compared with the threshold in double.
 */
function torchvisionNms(xyxy: number[], classes: number[], offset: number, iouThres: number): number[] {
  const n = classes.length;
  const box = (i: number) => [0, 1, 2, 3].map((k) => f(xyxy[4 * i + k] + f(classes[i] * offset)));
  const boxes = Array.from({ length: n }, (_, i) => box(i));
  const areas = boxes.map(([x1, y1, x2, y2]) => f(f(x2 - x1) * f(y2 - y1)));
  const suppressed = new Array<boolean>(n).fill(false);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    if (suppressed[i]) continue;
    keep.push(i);
    for (let j = i + 1; j < n; j++) {
      const xx1 = Math.max(boxes[i][0], boxes[j][0]), yy1 = Math.max(boxes[i][1], boxes[j][1]);
      const xx2 = Math.min(boxes[i][2], boxes[j][2]), yy2 = Math.min(boxes[i][3], boxes[j][3]);
      const inter = f(Math.max(0, f(xx2 - xx1)) * Math.max(0, f(yy2 - yy1)));
      if (f(inter / f(f(areas[i] + areas[j]) - inter)) > iouThres) suppressed[j] = true;
    }
  }
  return keep;
}

// [0,0,10,10] and [0,2.5,10,12.5]: intersection 75, union 125, an IoU of exactly 0.6 in exact arithmetic.
const AT_06 = [0, 0, 10, 10, 0, 2.5, 10, 12.5];

Deno.test("greedyNms() suppresses an IoU of exactly 0.6 at iou 0.6: float32(0.6) > 0.6, as in torchvision", () => {
  assert.equal(75 / 125, 0.6, "in double the IoU equals the threshold and would survive the strict >");
  assert.ok(f(0.6) > 0.6, "in float32 it rounds up past the double threshold");
  assert.deepEqual(greedyNms(AT_06, [0, 0], MAX_WH, 0.6), [0]);
  assert.deepEqual(
    greedyNms(AT_06, [0, 0], MAX_WH, f(0.6)),
    [0, 1],
    "strict >: equal to float32(0.6) survives",
  );
  assert.deepEqual(torchvisionNms(AT_06, [0, 0], MAX_WH, 0.6), [0]);
});

Deno.test("serving nms() and val's nonMaxSuppression() decide the exact-0.6 IoU the same way", () => {
  const candidate = (i: number, score: number) => ({
    x1: AT_06[4 * i],
    y1: AT_06[4 * i + 1],
    x2: AT_06[4 * i + 2],
    y2: AT_06[4 * i + 3],
    score,
    classId: 0,
  });
  assert.deepEqual(nms([candidate(0, 0.9), candidate(1, 0.8)], 0.6, 300).map((c) => c.score), [0.9]);
  // the same boxes as val's raw rows (cx, cy, w, h, obj, cls0, cls1)
  const rows = Float32Array.from([5, 5, 10, 10, 0.9, 1, 0, 5, 7.5, 10, 10, 0.8, 1, 0]);
  assert.equal(nonMaxSuppression(rows, 2, VAL_NMS).length, 1);
});

/** Double-precision IoU of boxes i and j: exact for the small integer boxes below up to the final division. */
function iou64(xyxy: number[], i: number, j: number): number {
  const [a, b] = [xyxy.slice(4 * i, 4 * i + 4), xyxy.slice(4 * j, 4 * j + 4)];
  const inter = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0])) *
    Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter);
}

Deno.test("greedyNms() per class equals torchvision's one offset pass on crowded integer boxes (exact ties)", () => {
  let seed = 11;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  const int = (max: number) => Math.floor(random() * (max + 1));
  // Integer corners on a small canvas make IoUs land exactly on fractions such as 2/5 and 3/5, whose float32
  // rounds up past the double threshold (0.3, 0.4, 0.6) or down (0.45); 0.5 is exact.
  const thresholds = [0.3, 0.4, 0.45, 0.5, 0.6];
  let roundsUp = 0;
  for (let trial = 0; trial < 30; trial++) {
    const n = 60;
    const xyxy: number[] = [];
    for (let i = 0; i < n; i++) {
      const x = int(12), y = int(12);
      xyxy.push(x, y, x + 1 + int(5), y + 1 + int(5));
    }
    const classes = Array.from({ length: n }, () => int(2));
    for (let i = 0; i < n; i++) {
      for (let j = i + 1; j < n; j++) {
        const v = iou64(xyxy, i, j);
        if (classes[i] === classes[j] && thresholds.some((t) => v === t && f(v) > t)) roundsUp++;
      }
    }
    for (const iou of thresholds) {
      for (const offset of [MAX_WH, 0]) {
        assert.deepEqual(greedyNms(xyxy, classes, offset, iou), torchvisionNms(xyxy, classes, offset, iou));
      }
    }
    const all = torchvisionNms(xyxy, classes, MAX_WH, 0.5);
    assert.deepEqual(greedyNms(xyxy, classes, MAX_WH, 0.5, 7), all.slice(0, 7), "maxKeep truncates in order");
  }
  assert.ok(roundsUp > 0, "the boxes include IoUs exactly at a threshold that float32 rounds up");
});
