import assert from "node:assert/strict";
import { letterboxGeometry } from "../../src/image/letterbox.ts";
import {
  candidates,
  DEFAULT_DETECT_OPTIONS,
  postprocess,
  toOriginal,
} from "../../src/serving/postprocess.ts";

const NC = 3;
/** One output row: cx, cy, w, h, objectness, class scores. */
const row = (
  cx: number,
  cy: number,
  w: number,
  h: number,
  obj: number,
  cls: number[],
) => [cx, cy, w, h, obj, ...cls];

Deno.test("candidates() keeps obj > conf, scores obj x best class, and converts xywh to xyxy", () => {
  const out = new Float32Array([
    ...row(50, 50, 20, 10, 0.9, [0.1, 0.8, 0.2]), // kept: class 1, score 0.72
    ...row(50, 50, 20, 10, 0.25, [1, 1, 1]), // obj not strictly above 0.25
    ...row(50, 50, 20, 10, 0.5, [0.4, 0.1, 0.1]), // obj passes, score 0.2 does not
    ...row(10, 20, 4, 8, 0.6, [0.7, 0.7, 0.1]), // tie: the first maximum (class 0) wins
  ]);
  const found = candidates(out, NC, DEFAULT_DETECT_OPTIONS);
  assert.deepEqual(found, [
    { x1: 40, y1: 45, x2: 60, y2: 55, score: Math.fround(Math.fround(0.8) * Math.fround(0.9)), classId: 1 },
    { x1: 8, y1: 16, x2: 12, y2: 24, score: Math.fround(Math.fround(0.7) * Math.fround(0.6)), classId: 0 },
  ]);
  assert.deepEqual(candidates(out, NC, { ...DEFAULT_DETECT_OPTIONS, classes: [0] }).map((c) => c.classId), [
    0,
  ]);
});

Deno.test("toOriginal() undoes letterbox gain and padding, clips, and rounds half to even", () => {
  // bus.jpg geometry: gain 640/1080, pad (80, 0).
  const box = letterboxGeometry(810, 1080, 640);
  const gain = 640 / 1080;
  const c = {
    x1: 80 + 100 * gain,
    y1: 40 * gain,
    x2: 80 + 300.5 * gain,
    y2: 700 * gain,
    score: 0.5,
    classId: 2,
  };
  assert.deepEqual(toOriginal(c, box, 810, 1080).box, { x1: 100, y1: 40, x2: 300, y2: 700 });
  const outside = { x1: 10, y1: -5, x2: 700, y2: 650, score: 0.5, classId: 2 };
  assert.deepEqual(toOriginal(outside, box, 810, 1080).box, { x1: 0, y1: 0, x2: 810, y2: 1080 });
});

Deno.test("postprocess() runs candidates, NMS and mapping together", () => {
  const out = new Float32Array([
    ...row(320, 320, 100, 100, 0.9, [0.9, 0, 0]),
    ...row(322, 320, 100, 100, 0.8, [0.9, 0, 0]), // same class, IoU 0.96: suppressed
    ...row(322, 320, 100, 100, 0.8, [0, 0.9, 0]), // other class: kept
  ]);
  const box = letterboxGeometry(640, 640, 640);
  const found = postprocess(out, NC, DEFAULT_DETECT_OPTIONS, box, 640, 640);
  assert.deepEqual(found.map((d) => [d.classId, d.box]), [
    [0, { x1: 270, y1: 270, x2: 370, y2: 370 }],
    [1, { x1: 272, y1: 270, x2: 372, y2: 370 }],
  ]);
});
