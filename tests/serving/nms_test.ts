import assert from "node:assert/strict";
import { type Candidate, MAX_WH, nms } from "../../src/serving/nms.ts";

const box = (x1: number, y1: number, x2: number, y2: number, score: number, classId = 0): Candidate => ({
  x1,
  y1,
  x2,
  y2,
  score,
  classId,
});

Deno.test("nms() keeps the higher-scored of two same-class boxes overlapping above the threshold", () => {
  const a = box(0, 0, 10, 10, 0.9);
  const b = box(1, 1, 11, 11, 0.8); // inter 81, union 119: IoU 0.68
  const far = box(50, 50, 60, 60, 0.7);
  assert.deepEqual(nms([b, far, a], 0.45, 300), [a, far]);
});

Deno.test("nms() suppresses only when IoU is strictly above the threshold, with no +1 in areas", () => {
  // [0,0,10,10] vs [0,0,10,5]: inter 50, union 100, IoU exactly 0.5 (with +1 pixel areas it would be 0.545).
  const a = box(0, 0, 10, 10, 0.9);
  const b = box(0, 0, 10, 5, 0.8);
  assert.deepEqual(nms([a, b], 0.5, 300), [a, b]);
  assert.deepEqual(nms([a, b], 0.49, 300), [a]);
});

Deno.test("nms() computes IoU in float32 like torchvision: exactly 0.6 is suppressed at iou 0.6", () => {
  // [0,0,10,10] vs [0,2.5,10,12.5]: inter 75, union 125; 75 / 125 is 0.6 in double but float32(0.6) > 0.6.
  const a = box(0, 0, 10, 10, 0.9);
  const b = box(0, 2.5, 10, 12.5, 0.8);
  assert.ok(75 / 125 === 0.6 && Math.fround(0.6) > 0.6);
  assert.deepEqual(nms([a, b], 0.6, 300), [a]);
  assert.deepEqual(nms([a, b], Math.fround(0.6), 300), [a, b]);
});

Deno.test("nms() is class-aware: identical boxes of different classes both survive", () => {
  const person = box(0, 0, 10, 10, 0.9, 0);
  const bus = box(0, 0, 10, 10, 0.6, 5);
  assert.deepEqual(nms([bus, person], 0.45, 300), [person, bus]);
  assert.deepEqual(nms([bus, person], 0.45, 300, true), [person]);
});

Deno.test("nms() lets a suppressed box suppress nothing (greedy order)", () => {
  // b overlaps a and c; a suppresses b, so c (which overlaps only b) survives.
  const a = box(0, 0, 10, 10, 0.9);
  const b = box(4, 0, 14, 10, 0.8); // IoU(a, b) = 60/140 = 0.43
  const c = box(8, 0, 18, 10, 0.7); // IoU(a, c) = 20/180 = 0.11, IoU(b, c) = 0.43
  assert.deepEqual(nms([a, b, c], 0.4, 300), [a, c]);
});

Deno.test("nms() returns at most maxDet boxes, best first", () => {
  const boxes = [0.3, 0.9, 0.5, 0.7].map((s, i) => box(i * 20, 0, i * 20 + 10, 10, s));
  assert.deepEqual(nms(boxes, 0.45, 2).map((b) => b.score), [0.9, 0.7]);
});

/** torchvision-style reference: one greedy pass over every box, classes kept apart by the MAX_WH offset. */
function referenceNms(candidates: Candidate[], iouThres: number, maxDet: number): Candidate[] {
  const sorted = [...candidates].sort((a, b) => b.score - a.score);
  const off = (c: Candidate) => c.classId * MAX_WH;
  const iou = (a: Candidate, b: Candidate) => {
    const w = Math.min(a.x2 + off(a), b.x2 + off(b)) - Math.max(a.x1 + off(a), b.x1 + off(b));
    const h = Math.min(a.y2 + off(a), b.y2 + off(b)) - Math.max(a.y1 + off(a), b.y1 + off(b));
    const inter = Math.max(0, w) * Math.max(0, h);
    return inter / ((a.x2 - a.x1) * (a.y2 - a.y1) + (b.x2 - b.x1) * (b.y2 - b.y1) - inter);
  };
  const kept: Candidate[] = [];
  for (const c of sorted) if (kept.every((k) => iou(k, c) <= iouThres)) kept.push(c);
  return kept.slice(0, maxDet);
}

Deno.test("nms() per class equals one offset-trick pass over random crowded boxes", () => {
  let seed = 7;
  const random = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
  for (let trial = 0; trial < 20; trial++) {
    const boxes = Array.from({ length: 200 }, () => {
      const x = random() * 600, y = random() * 600, w = 10 + random() * 80, h = 10 + random() * 80;
      return box(x, y, x + w, y + h, random(), Math.floor(random() * 4));
    });
    assert.deepEqual(nms(boxes, 0.45, 50), referenceNms(boxes, 0.45, 50));
  }
});
