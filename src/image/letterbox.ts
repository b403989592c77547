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

const align16 = (n: number) => (n + 15) & ~15;

/**
 * WebAssembly memory cannot shrink: an input whose scratch a very wide image grew past this many bytes starts
 * over with fresh kernels at its next write.
 */
const KEEP_SCRATCH_BYTES = 16 << 20;

/**
 * A square NCHW float32 input tensor that lives in its letterbox kernels' WebAssembly memory, so the letterbox
 * writes it in place: resize, pad, channel split and scaling in one pass, the pixels touched once. Behind the
 * tensor: the taps, the source row being resized and two resized rows.
 */
export class LetterboxInput {
  private kernels = new LetterboxKernels();
  private view?: Float32Array;

  constructor(readonly size: number) {
    this.kernels.reserve(3 * size * size * 4);
  }

  /** The letterboxed image (RGB planes in [0, 1]); valid until the next {@link write}, which may move it. */
  get tensor(): Float32Array {
    const memory = this.kernels.memory.buffer;
    if (this.view?.buffer !== memory) this.view = new Float32Array(memory, 0, 3 * this.size * this.size);
    return this.view;
  }

  /** Letterboxes `img` into {@link tensor}; says where the image landed. */
  write(img: RgbImage): Letterbox {
    const { size } = this;
    const box = letterboxGeometry(img.width, img.height, size);
    const plane = size * size;
    const rowBytes = img.width * 3;
    const resizedRowBytes = align16(box.width * 12 + ROW_OVERWRITE);
    const tapsAt = align16(3 * plane * 4);
    const srcAt = tapsAt + align16(box.width * TAP_BYTES);
    let h0At = align16(srcAt + rowBytes + SOURCE_OVERREAD);
    let h1At = h0At + resizedRowBytes;
    const end = h1At + resizedRowBytes;
    const keep = tapsAt + KEEP_SCRATCH_BYTES;
    if (end <= keep && this.kernels.memory.buffer.byteLength > keep) this.kernels = new LetterboxKernels();
    const k = this.kernels;
    k.reserve(end);
    const view = this.tensor;
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
    const memory = k.memory.buffer;
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
      const at = 4 * ((box.top + y) * size + box.left);
      k.vblend(h0At, h1At, ys.w0[y], ys.w1[y], at, 4 * plane, box.width);
    }
    return box;
  }
}

/** The input {@link letterbox} writes through, of this thread (a Worker has its own); dropped past this size. */
let shared: LetterboxInput | undefined;
const KEEP_SHARED_BYTES = 64 << 20;

/**
 * Letterboxes `img` into a square NCHW float32 tensor in [0, 1] (RGB planes), written into `out` when given:
 * through a {@link LetterboxInput} of this thread, then copied out (0.34 ms at 640; serving writes its inputs
 * in place).
 */
export function letterbox(
  img: RgbImage,
  size: number,
  out?: Float32Array,
): { tensor: Float32Array; box: Letterbox } {
  if (shared?.size !== size) shared = new LetterboxInput(size);
  const box = shared.write(img);
  const tensor = out ?? new Float32Array(3 * size * size);
  tensor.set(shared.tensor);
  if (shared.tensor.byteLength > KEEP_SHARED_BYTES) shared = undefined;
  return { tensor, box };
}
