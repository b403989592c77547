/**
 * The YOLOv5 v7.0 P5 architecture (models/yolov5{n,s,m,l,x}.yaml differ only in depth and width multiples) and
 * `parse_model`'s scaling rules.
 * @module
 */

/** One row of the yaml: `[from, number, module, args]`, args already split into named fields. */
export type LayerSpec =
  | { module: "Conv"; c2: number; k: number; s: number; p?: number }
  | { module: "C3"; n: number; c2: number; shortcut: boolean }
  | { module: "SPPF"; c2: number; k: number }
  | { module: "Upsample" }
  | { module: "Concat"; from: number[] }
  | { module: "Detect"; from: number[] };

/** backbone + head of yolov5s.yaml (v7.0); `from` is -1 unless given. */
export const YOLOV5_P5: readonly LayerSpec[] = [
  { module: "Conv", c2: 64, k: 6, s: 2, p: 2 }, // 0-P1/2
  { module: "Conv", c2: 128, k: 3, s: 2 }, // 1-P2/4
  { module: "C3", n: 3, c2: 128, shortcut: true },
  { module: "Conv", c2: 256, k: 3, s: 2 }, // 3-P3/8
  { module: "C3", n: 6, c2: 256, shortcut: true },
  { module: "Conv", c2: 512, k: 3, s: 2 }, // 5-P4/16
  { module: "C3", n: 9, c2: 512, shortcut: true },
  { module: "Conv", c2: 1024, k: 3, s: 2 }, // 7-P5/32
  { module: "C3", n: 3, c2: 1024, shortcut: true },
  { module: "SPPF", c2: 1024, k: 5 }, // 9
  { module: "Conv", c2: 512, k: 1, s: 1 },
  { module: "Upsample" },
  { module: "Concat", from: [-1, 6] }, // cat backbone P4
  { module: "C3", n: 3, c2: 512, shortcut: false }, // 13
  { module: "Conv", c2: 256, k: 1, s: 1 },
  { module: "Upsample" },
  { module: "Concat", from: [-1, 4] }, // cat backbone P3
  { module: "C3", n: 3, c2: 256, shortcut: false }, // 17 (P3/8-small)
  { module: "Conv", c2: 256, k: 3, s: 2 },
  { module: "Concat", from: [-1, 14] }, // cat head P4
  { module: "C3", n: 3, c2: 512, shortcut: false }, // 20 (P4/16-medium)
  { module: "Conv", c2: 512, k: 3, s: 2 },
  { module: "Concat", from: [-1, 10] }, // cat head P5
  { module: "C3", n: 3, c2: 1024, shortcut: false }, // 23 (P5/32-large)
  { module: "Detect", from: [17, 20, 23] }, // Detect(P3, P4, P5)
];

/** Pixel anchors per level (P3/8, P4/16, P5/32) as (w, h) pairs: the yaml's `anchors`. */
export const YOLOV5_ANCHORS: readonly (readonly number[])[] = [
  [10, 13, 16, 30, 33, 23],
  [30, 61, 62, 45, 59, 119],
  [116, 90, 156, 198, 373, 326],
];

/** Strides of the three Detect levels (the P5 model's downsampling at layers 17, 20, 23). */
export const YOLOV5_STRIDES: readonly number[] = [8, 16, 32];

/** Python 3's round(): halves go to the even neighbour (round(2.5) = 2), which parse_model relies on. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** `make_divisible(x, 8)`: the next multiple of 8 at or above x. */
export function makeDivisible(x: number, divisor = 8): number {
  return Math.ceil(x / divisor) * divisor;
}

/** Bottleneck count of a C3: `max(round(n * depth), 1) if n > 1 else n`. */
export function scaledDepth(n: number, depth: number): number {
  return n > 1 ? Math.max(roundHalfEven(n * depth), 1) : n;
}

/** Output channels of a Conv/C3/SPPF: `make_divisible(c2 * width, 8)`. */
export function scaledWidth(c2: number, width: number): number {
  return makeDivisible(c2 * width);
}
