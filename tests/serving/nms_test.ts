import assert from "node:assert/strict";
import { type Candidate, nms } from "../../src/serving/nms.ts";

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
