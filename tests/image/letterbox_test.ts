import assert from "node:assert/strict";
import { letterbox, letterboxGeometry, PAD_VALUE, roundHalfEven } from "../../src/image/letterbox.ts";

const unit = (v: number) => Math.fround(v / 255);

Deno.test("roundHalfEven() rounds halves to even like Python's round()", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, 4, 2, 3]);
});

Deno.test("letterboxGeometry() matches YOLOv5 letterbox(auto=False) on hand-checked shapes", () => {
  // bus.jpg: r = 640/1080, new_unpad = (480, 640), dw = 80 -> left = round(79.9) = 80.
  assert.deepEqual(letterboxGeometry(810, 1080, 640), {
    size: 640,
    width: 480,
    height: 640,
    left: 80,
    top: 0,
  });
  // zidane.jpg: r = 0.5, new_unpad = (640, 360), dh = 140 -> top = round(139.9) = 140.
  assert.deepEqual(letterboxGeometry(1280, 720, 640), {
    size: 640,
    width: 640,
    height: 360,
    left: 0,
    top: 140,
  });
  // h·r = 2.5 exactly: Python rounds to 2, not 3; dh = 4 -> top = round(3.9) = 4.
  assert.deepEqual(letterboxGeometry(8, 2, 10), { size: 10, width: 10, height: 2, left: 0, top: 4 });
  // Odd padding: dh = 1.5 -> top = round(1.4) = 1 (and bottom = round(1.6) = 2).
  assert.deepEqual(letterboxGeometry(4, 1, 4), { size: 4, width: 4, height: 1, left: 0, top: 1 });
});

Deno.test("letterbox() pads with 114 and writes RGB planes in NCHW order", () => {
  // 4x2 image, no resize: rows 0 and 3 are padding, rows 1-2 hold the image.
  const data = new Uint8Array(4 * 2 * 3);
  for (let p = 0; p < 8; p++) data.set([10, 20, 30], p * 3);
  const { tensor, box } = letterbox({ width: 4, height: 2, data }, 4);
  assert.deepEqual(box, { size: 4, width: 4, height: 2, left: 0, top: 1 });
  for (let c = 0; c < 3; c++) {
    const plane = [...tensor.subarray(c * 16, c * 16 + 16)];
    const v = unit(10 * (c + 1));
    const pad = unit(PAD_VALUE);
    assert.deepEqual(plane, [...Array(4).fill(pad), ...Array(8).fill(v), ...Array(4).fill(pad)]);
  }
});

Deno.test("letterbox() resizes bilinearly with half-pixel centres like cv2 INTER_LINEAR", () => {
  // 2x2 grey image [[0, 100], [200, 255]] upscaled to 4x4. Source x for output column d is (d + 0.5)/2 - 0.5
  // = -0.25, 0.25, 0.75, 1.25, clamped to the edge: columns weigh (1, 0), (0.75, 0.25), (0.25, 0.75), (0, 1).
  const grey = [0, 100, 200, 255];
  const data = new Uint8Array(grey.flatMap((v) => [v, v, v]));
  const { tensor } = letterbox({ width: 2, height: 2, data }, 4);
  // Row 0 = [0, 25, 75, 100]; row 3 = [200, 213.75, 241.25, 255]; rows 1-2 mix them 0.75/0.25 and 0.25/0.75.
  // e.g. 0.75*25 + 0.25*213.75 = 72.19 -> 72; 0.25*25 + 0.75*213.75 = 166.56 -> 167 (round to nearest).
  const expected = [
    [0, 25, 75, 100],
    [50, 72, 117, 139],
    [150, 167, 200, 216],
    [200, 214, 241, 255],
  ].flat().map(unit);
  for (let c = 0; c < 3; c++) assert.deepEqual([...tensor.subarray(c * 16, c * 16 + 16)], expected);
});

Deno.test("letterbox() writes into a caller's tensor without allocating another", () => {
  const out = new Float32Array(3 * 8 * 8);
  const { tensor } = letterbox({ width: 2, height: 2, data: new Uint8Array(12) }, 8, out);
  assert.equal(tensor, out);
});
