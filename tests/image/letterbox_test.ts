import assert from "node:assert/strict";
import type { RgbImage } from "../../src/image/decode.ts";
import {
  letterbox,
  letterboxGeometry,
  LetterboxInput,
  PAD_VALUE,
  roundHalfEven,
} from "../../src/image/letterbox.ts";
import { mulberry32 } from "../_helpers/random.ts";
import { letterboxReference } from "./_letterbox_reference.ts";

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

/** A width x height RGB image of seeded random bytes; every 8-bit value shows up in all but the tiniest. */
function randomImage(width: number, height: number, seed: number) {
  const next = mulberry32(seed);
  return {
    width,
    height,
    data: Uint8Array.from({ length: width * height * 3 }, () => Math.floor(next() * 256)),
  };
}

Deno.test("letterbox() (WebAssembly SIMD) equals the TypeScript reference bit for bit", () => {
  // [source width, source height, size]: down- and upscaling, odd sizes, a resized width of every n % 4 (the
  // kernel does 4 columns at a time), one-pixel images, no resize at all, a side rounded to nothing, and bus.jpg's
  // and zidane.jpg's shapes.
  const cases: [number, number, number][] = [
    [810, 1080, 640],
    [1280, 720, 640],
    [640, 640, 640],
    [37, 23, 640],
    [1, 1, 32],
    [1, 7, 9],
    [7, 1, 9],
    [3, 5, 13],
    [101, 99, 65],
    [999, 333, 417],
    [2, 2, 4],
    [333, 1000, 321],
    [4000, 3, 255],
    [5, 2, 10],
    [1000, 1, 10], // resized to 10x0: padding only
  ];
  let seed = 1;
  for (const [width, height, size] of cases) {
    const img = randomImage(width, height, seed++);
    const expected = letterboxReference(img, size);
    const { tensor, box } = letterbox(img, size);
    assert.deepEqual(box, expected.box);
    const differ = tensor.findIndex((v, i) => !Object.is(v, expected.tensor[i]));
    assert.equal(differ, -1, `${width}x${height} at ${size}: element ${differ} differs`);
  }
});

Deno.test("letterbox() maps every byte value to the reference's float, and reuses a caller's dirty tensor", () => {
  // A 256x1 ramp letterboxed without resizing: each value once, at its own column.
  const ramp = {
    width: 256,
    height: 1,
    data: Uint8Array.from({ length: 256 * 3 }, (_, i) => Math.floor(i / 3)),
  };
  const out = new Float32Array(3 * 256 * 256).fill(Number.NaN);
  const { tensor, box } = letterbox(ramp, 256, out);
  const expected = letterboxReference(ramp, 256).tensor;
  assert.equal(tensor.findIndex((v, i) => !Object.is(v, expected[i])), -1);
  for (let v = 0; v < 256; v++) assert.equal(tensor[box.top * 256 + v], unit(v));
});

Deno.test("letterbox() stays exact after a size large enough to rebuild its kernels' memory", () => {
  // 2400² x 3 floats = 69 MB: past the memory the kernels keep, so the next call starts from fresh kernels.
  for (const [size, seed] of [[2400, 7], [320, 8], [640, 9]]) {
    const img = randomImage(53, 31, seed);
    const expected = letterboxReference(img, size).tensor;
    const { tensor } = letterbox(img, size);
    assert.equal(tensor.findIndex((v, i) => !Object.is(v, expected[i])), -1, `size ${size}`);
  }
});

Deno.test("LetterboxInput writes in place, bit for bit the reference, as its memory grows and starts over", () => {
  const input = new LetterboxInput(64);
  const check = (img: RgbImage, what: string) => {
    const box = input.write(img);
    const expected = letterboxReference(img, 64);
    assert.deepEqual(box, expected.box, what);
    const differ = input.tensor.findIndex((v, i) => !Object.is(v, expected.tensor[i]));
    assert.equal(differ, -1, `${what}: element ${differ} differs`);
  };
  check(randomImage(50, 40, 11), "first image");
  const tensor = input.tensor;
  check(randomImage(40, 50, 12), "same-sized source rows");
  assert.equal(input.tensor, tensor, "no growth: the same tensor, written in place");
  check(randomImage(3000, 20, 13), "a wider image (the memory grows)");
  // 18 MB rows: past the scratch an input keeps, so the next write starts over on fresh memory.
  check({ width: 6_000_000, height: 1, data: new Uint8Array(18_000_000).fill(200) }, "a very wide image");
  check(randomImage(31, 77, 14), "after the very wide one");
});
