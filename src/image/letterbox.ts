import type { RgbImage } from "./decode.ts";

/** YOLOv5's letterbox pad value (114, 114, 114). */
export const PAD_VALUE = 114;

/** Where the image landed inside the square input, for mapping boxes back (spec §7.2/§7.4). */
export interface Letterbox {
  size: number;
  /** Resized image size and its top-left offset inside the square. */
  width: number;
  height: number;
  left: number;
  top: number;
}

// OpenCV's INTER_LINEAR on 8-bit images works in fixed point: weights scaled by 2^11, two passes, one rounding.
const COEF_BITS = 11;
const COEF_ONE = 1 << COEF_BITS;
const ROUND = 1 << (2 * COEF_BITS - 1);

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
  const rowLen = box.width * 3;
  let rows = [new Int32Array(rowLen), new Int32Array(rowLen)];
  let held = [-1, -1];
  const src = img.data;
  const stride = img.width * 3;
  const last = img.width - 1;
  const horizontal = (sy: number, row: Int32Array) => {
    const off = sy * stride;
    for (let x = 0, o = 0; x < box.width; x++, o += 3) {
      const a = xs.w0[x];
      const b = xs.w1[x];
      const p = off + xs.index[x] * 3;
      const q = off + Math.min(xs.index[x] + 1, last) * 3;
      row[o] = src[p] * a + src[q] * b;
      row[o + 1] = src[p + 1] * a + src[q + 1] * b;
      row[o + 2] = src[p + 2] * a + src[q + 2] * b;
    }
  };
  for (let y = 0; y < box.height; y++) {
    const sy = ys.index[y];
    const sy1 = Math.min(sy + 1, img.height - 1);
    if (held[0] !== sy) {
      if (held[1] === sy) {
        rows = [rows[1], rows[0]];
        held = [held[1], held[0]];
      } else {
        horizontal(sy, rows[0]);
        held[0] = sy;
      }
    }
    if (held[1] !== sy1) {
      horizontal(sy1, rows[1]);
      held[1] = sy1;
    }
    const a = ys.w0[y];
    const b = ys.w1[y];
    const [r0, r1] = rows;
    const o = (box.top + y) * size + box.left;
    for (let x = 0, i = 0; x < box.width; x++, i += 3) {
      tensor[o + x] = UNIT[(r0[i] * a + r1[i] * b + ROUND) >> 22];
      tensor[plane + o + x] = UNIT[(r0[i + 1] * a + r1[i + 1] * b + ROUND) >> 22];
      tensor[2 * plane + o + x] = UNIT[(r0[i + 2] * a + r1[i + 2] * b + ROUND) >> 22];
    }
  }
  return { tensor, box };
}
