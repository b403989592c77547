import type { RgbImage } from "./decode.ts";
import { LetterboxKernels, ROW_OVERWRITE, SOURCE_OVERREAD, TAP_BYTES } from "./letterbox_kernels.ts";

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
export function axisTaps(src: number, dst: number): { index: Int32Array; w0: Int32Array; w1: Int32Array } {
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

/**
 * The kernels of this thread (a Worker has its own), built on first use. WebAssembly memory cannot shrink, so
 * kernels whose memory a large input grew past this are dropped after that input, and the next call builds new.
 */
let kernels: LetterboxKernels | undefined;
const KEEP_KERNEL_BYTES = 64 << 20;

const align16 = (n: number) => (n + 15) & ~15;

/**
 * Letterboxes `img` into a square NCHW float32 tensor in [0, 1] (RGB planes), written into `out` when given.
 * Resize, pad, channel split and scaling happen in one pass over the WebAssembly kernels' memory, which holds
 * the source row being resized, two resized rows and the tensor; the tensor is copied out once at the end.
 */
export function letterbox(
  img: RgbImage,
  size: number,
  out?: Float32Array,
): { tensor: Float32Array; box: Letterbox } {
  const box = letterboxGeometry(img.width, img.height, size);
  const plane = size * size;
  const tensor = out ?? new Float32Array(3 * plane);
  const k = kernels ??= new LetterboxKernels();
  const rowBytes = img.width * 3;
  const resizedRowBytes = align16(box.width * 12 + ROW_OVERWRITE);
  const tapsAt = 0;
  const srcAt = align16(box.width * TAP_BYTES);
  let h0At = align16(srcAt + rowBytes + SOURCE_OVERREAD);
  let h1At = h0At + resizedRowBytes;
  const tensorAt = h1At + resizedRowBytes;
  k.reserve(tensorAt + tensor.byteLength);
  const memory = k.memory.buffer;
  const view = new Float32Array(memory, tensorAt, 3 * plane);
  const pad = Math.fround(PAD_VALUE / 255);
  for (let c = 0; c < 3; c++) {
    const base = c * plane;
    view.fill(pad, base, base + box.top * size);
    view.fill(pad, base + (box.top + box.height) * size, base + plane);
    for (let y = box.top; y < box.top + box.height; y++) {
      view.fill(pad, base + y * size, base + y * size + box.left);
      view.fill(pad, base + y * size + box.left + box.width, base + (y + 1) * size);
    }
  }
  const xs = axisTaps(img.width, box.width);
  const ys = axisTaps(img.height, box.height);
  const taps = new Int32Array(memory, tapsAt, box.width * 3);
  for (let x = 0; x < box.width; x++) {
    taps[3 * x] = xs.index[x] * 3;
    taps[3 * x + 1] = Math.min(xs.index[x] + 1, img.width - 1) * 3;
    taps[3 * x + 2] = (xs.w1[x] << 16) | xs.w0[x];
  }
  const srcRow = new Uint8Array(memory, srcAt, rowBytes);
  const horizontal = (sy: number, at: number) => {
    srcRow.set(img.data.subarray(sy * rowBytes, (sy + 1) * rowBytes));
    k.hresize(srcAt, box.width, tapsAt, at);
  };
  let held0 = -1;
  let held1 = -1;
  for (let y = 0; y < box.height; y++) {
    const sy = ys.index[y];
    const sy1 = Math.min(sy + 1, img.height - 1);
    if (held0 !== sy) {
      if (held1 === sy) {
        [h0At, h1At, held0, held1] = [h1At, h0At, held1, held0];
      } else {
        horizontal(sy, h0At);
        held0 = sy;
      }
    }
    if (held1 !== sy1) {
      horizontal(sy1, h1At);
      held1 = sy1;
    }
    const at = tensorAt + 4 * ((box.top + y) * size + box.left);
    k.vblend(h0At, h1At, ys.w0[y], ys.w1[y], at, 4 * plane, box.width);
  }
  tensor.set(view);
  if (memory.byteLength > KEEP_KERNEL_BYTES) kernels = undefined;
  return { tensor, box };
}
