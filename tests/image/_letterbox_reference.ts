/**
 * The cv2-exact letterbox as plain TypeScript loops (what src/image/letterbox.ts ran before its inner loops moved
 * to WebAssembly SIMD): the reference the WebAssembly one is compared with bit for bit. Its own arithmetic was
 * checked against cv2.resize and YOLOv5's reference detections.
 */
import type { RgbImage } from "../../src/image/decode.ts";
import { axisTaps, type Letterbox, letterboxGeometry, PAD_VALUE } from "../../src/image/letterbox.ts";

const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** letterbox() of src/image/letterbox.ts, one scalar loop per pass. */
export function letterboxReference(
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
