import type { RgbImage } from "./decode.ts";

/** YOLOv5's letterbox pad value (114, 114, 114). */
export const PAD_VALUE = 114;

/** Where the image landed inside the square input, for mapping boxes back (docs/training.md §7.2/§7.4). */
export interface Letterbox {
  size: number;
  /** Resized image size and its top-left offset inside the square. */
  width: number;
  height: number;
  left: number;
  top: number;
}

// OpenCV's INTER_LINEAR on 8-bit images works in fixed point: weights scaled by 2^11, a horizontal pass kept
// as integers, then a vertical pass. The vertical pass is the SIMD one (VResizeLinearVec_32s8u), which every
// x86/ARM build runs: ((h0 >> 4) * b0 >> 16) + ((h1 >> 4) * b1 >> 16), then (+ 2) >> 2.
const COEF_BITS = 11;
const COEF_ONE = 1 << COEF_BITS;

/** Python's round(): half to even, which decides new_unpad when w·r lands on .5. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x) + 0; // + 0 turns Math.round(-0.1) = -0 into 0
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** letterbox(im, size, auto=False, scaleup=True): the geometry only. */
export function letterboxGeometry(width: number, height: number, size: number): Letterbox {
  const r = Math.min(size / height, size / width);
  const newW = roundHalfEven(width * r);
  const newH = roundHalfEven(height * r);
  return {
    size,
    width: newW,
    height: newH,
    left: roundHalfEven((size - newW) / 2 - 0.1),
    top: roundHalfEven((size - newH) / 2 - 0.1),
  };
}

/** Source index and fixed-point weight pairs per destination coordinate, as cv::resize computes them. */
function axisTaps(src: number, dst: number): { index: Int32Array; w0: Int32Array; w1: Int32Array } {
  const scale = src / dst;
  const index = new Int32Array(dst);
  const w0 = new Int32Array(dst);
  const w1 = new Int32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5);
    let s = Math.floor(f);
    f -= s;
    if (s < 0) f = 0, s = 0;
    if (s >= src - 1) f = 0, s = src - 1;
    index[d] = s;
    w0[d] = Math.round(Math.fround(1 - f) * COEF_ONE);
    w1[d] = Math.round(f * COEF_ONE);
  }
  return { index, w0, w1 };
}

const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/**
 * Letterboxes `img` into a square NCHW float32 tensor in [0, 1] (RGB planes), written into `out` when given.
 * Resize, pad, channel split and scaling happen in one pass, so the only full-size buffer is the tensor.
 */
export function letterbox(
  img: RgbImage,
  size: number,
  out?: Float32Array,
): { tensor: Float32Array; box: Letterbox } {
  const box = letterboxGeometry(img.width, img.height, size);
  const plane = size * size;
  const tensor = out ?? new Float32Array(3 * plane);
  const pad = UNIT[PAD_VALUE];
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    tensor.fill(pad, base, base + box.top * size);
    tensor.fill(pad, base + (box.top + box.height) * size, base + plane);
    for (let y = box.top; y < box.top + box.height; y++) {
      tensor.fill(pad, base + y * size, base + y * size + box.left);
      tensor.fill(pad, base + y * size + box.left + box.width, base + (y + 1) * size);
    }
  }
  const xs = axisTaps(img.width, box.width);
  const ys = axisTaps(img.height, box.height);
  const taps: HorizontalTaps = {
    from: xs.index.map((i) => i * 3),
    to: xs.index.map((i) => Math.min(i + 1, img.width - 1) * 3),
    w0: xs.w0,
    w1: xs.w1,
  };
  let h0 = new Int32Array(box.width * 3);
  let h1 = new Int32Array(box.width * 3);
  let held0 = -1;
  let held1 = -1;
  for (let y = 0; y < box.height; y++) {
    const sy = ys.index[y];
    const sy1 = Math.min(sy + 1, img.height - 1);
    if (held0 !== sy) {
      if (held1 === sy) {
        [h0, h1, held0, held1] = [h1, h0, held1, held0];
      } else {
        horizontal(img, sy, taps, h0);
        held0 = sy;
      }
    }
    if (held1 !== sy1) {
      horizontal(img, sy1, taps, h1);
      held1 = sy1;
    }
    vertical(h0, h1, ys.w0[y], ys.w1[y], tensor, (box.top + y) * size + box.left, plane, box.width);
  }
  return { tensor, box };
}

interface HorizontalTaps {
  /** Byte offsets of the left and right source pixels of each destination column, and their weights. */
  from: Int32Array;
  to: Int32Array;
  w0: Int32Array;
  w1: Int32Array;
}

/** One source row resized horizontally, kept as fixed-point integers pre-shifted by 4 (OpenCV's SIMD path). */
function horizontal(img: RgbImage, sy: number, taps: HorizontalTaps, row: Int32Array): void {
  const src = img.data;
  const off = sy * img.width * 3;
  const { from, to, w0, w1 } = taps;
  for (let x = 0, o = 0, n = from.length; x < n; x++, o += 3) {
    const p = off + from[x], q = off + to[x], a = w0[x], b = w1[x];
    row[o] = (src[p] * a + src[q] * b) >> 4;
    row[o + 1] = (src[p + 1] * a + src[q + 1] * b) >> 4;
    row[o + 2] = (src[p + 2] * a + src[q + 2] * b) >> 4;
  }
}

/** Blends two horizontal rows into one destination row of each RGB plane, as 0..1 floats. */
function vertical(
  h0: Int32Array,
  h1: Int32Array,
  b0: number,
  b1: number,
  out: Float32Array,
  at: number,
  plane: number,
  width: number,
): void {
  const g = at + plane, b = at + 2 * plane;
  for (let x = 0, i = 0; x < width; x++, i += 3) {
    out[at + x] = UNIT[(((h0[i] * b0) >> 16) + ((h1[i] * b1) >> 16) + 2) >> 2];
    out[g + x] = UNIT[(((h0[i + 1] * b0) >> 16) + ((h1[i + 1] * b1) >> 16) + 2) >> 2];
    out[b + x] = UNIT[(((h0[i + 2] * b0) >> 16) + ((h1[i + 2] * b1) >> 16) + 2) >> 2];
  }
}
