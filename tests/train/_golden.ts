/**
 * Readers for the reference data's golden/finetune-sgd (tests/_helpers/reference.ts): the iteration-0 batch (first two images in sorted order), its labels
 * as collate rows, the raw head outputs, the loss items and the parameter gradients PyTorch produced.
 */
import type { LossLayer } from "../../src/train/targets.ts";
import type { LossHyp } from "../../src/train/loss_settings.ts";
import { referenceUrl } from "../../src/config/reference_dir.ts";

/** What the golden tests read: pass to referenceData() so they skip where it is absent. */
export const GOLDEN_FILES = ["golden/finetune-sgd/", "models/yolov5n.onnx"];
export const GOLDEN = referenceUrl("golden/finetune-sgd/");
export const YOLOV5N = referenceUrl("models/yolov5n.onnx");

export interface Scenario {
  imgsz: number;
  batch_size: number;
  freeze: number;
  hyp: LossHyp;
  images_in_order: string[];
}

export interface Debug0 {
  head_shapes: number[][];
  loss: number;
  loss_items: [number, number, number];
}

export interface GoldenParam {
  name: string;
  shape: number[];
  offset: number;
}

export const scenario = (): Scenario => JSON.parse(Deno.readTextFileSync(new URL("scenario.json", GOLDEN)));
export const debug0 = (): Debug0 => JSON.parse(Deno.readTextFileSync(new URL("debug0.json", GOLDEN)));
export const goldenParams = (): GoldenParam[] =>
  JSON.parse(Deno.readTextFileSync(new URL("final.json", GOLDEN))).params;

export function readF32File(name: string): Float32Array {
  const bytes = Deno.readFileSync(new URL(name, GOLDEN));
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** The three (bs, na, ny, nx, no) heads of iteration 0, split by debug0.json's shapes. */
export function goldenHeads(): Float32Array[] {
  const all = readF32File("head0.f32");
  let offset = 0;
  return debug0().head_shapes.map((shape) => {
    const size = shape.reduce((a, b) => a * b, 1);
    const view = all.subarray(offset, offset + size);
    offset += size;
    return view;
  });
}

/** Collate rows [b, cls, x, y, w, h] for the first `bs` images in sorted order, as float32 like PyTorch's. */
export function goldenTargets(bs: number): Float32Array {
  const rows: number[] = [];
  scenario().images_in_order.slice(0, bs).forEach((image, b) => {
    const stem = image.replace(/^images\//, "").replace(/\.png$/, "");
    const text = Deno.readTextFileSync(new URL(`labels/${stem}.txt`, GOLDEN));
    for (const line of text.trim().split("\n")) rows.push(b, ...line.trim().split(/\s+/).map(Number));
  });
  return new Float32Array(rows);
}

/** Loss layers from debug0.json's grid sizes and the anchors of the yolov5n export (pixels, the reference data's README). */
export function goldenLayers(anchorsPx: number[][][], strides: number[]): LossLayer[] {
  return debug0().head_shapes.map((shape, i) => ({
    ny: shape[2],
    nx: shape[3],
    anchors: anchorsPx[i].map(([w, h]) => [w / strides[i], h / strides[i]] as [number, number]),
  }));
}

/** yolov5n's anchors as listed in the reference data's README; the graph tests recover the same values from the ONNX. */
export const YOLOV5N_ANCHORS_PX = [
  [[10, 13], [16, 30], [33, 23]],
  [[30, 61], [62, 45], [59, 119]],
  [[116, 90], [156, 198], [373, 326]],
];
export const YOLOV5N_STRIDES = [8, 16, 32];

/** max |a-b| / max|b| style relative L2: ||a - b|| / ||b||. */
export function relL2(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}
