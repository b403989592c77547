import assert from "node:assert/strict";
import type { Detection } from "../../src/serving/postprocess.ts";

/**
 * Engines differ only in float32 summation order. Measured against native: on bus.jpg (yolov5n) any probability
 * moves by at most 2.8e-6 (wasm) and 4.3e-6 (WebGPU on lavapipe), box coordinates by 2e-3 px; on the default
 * model's fixture by 1.6e-6 and 9e-7, boxes by 6e-4 px; the aarch64 bundle's onnxruntime-node (NEON kernels,
 * under QEMU) against x86_64's (AVX-512 on the test machine) on that fixture by 4.8e-7, boxes equal. Bound at
 * ~25x the largest.
 */
export const MAX_CONF_DIFF = 1e-4;
/** Boxes are rounded to whole pixels, so a sub-pixel difference can flip one rounding. */
export const MAX_BOX_DIFF = 1;

/** `got` finds what `want` found: the same classes in the same order, each within MAX_CONF_DIFF and MAX_BOX_DIFF. */
export function assertSameDetections(got: Detection[], want: Detection[], what: string): void {
  assert.ok(want.length > 0, `${what}: the reference finds something`);
  assert.deepEqual(got.map((d) => d.classId), want.map((d) => d.classId), what);
  for (const [i, d] of got.entries()) {
    assert.ok(
      Math.abs(d.confidence - want[i].confidence) <= MAX_CONF_DIFF,
      `${what}: confidence ${i}: ${d.confidence} vs ${want[i].confidence}`,
    );
    for (const k of ["x1", "y1", "x2", "y2"] as const) {
      assert.ok(
        Math.abs(d.box[k] - want[i].box[k]) <= MAX_BOX_DIFF,
        `${what}: box ${i}.${k}: ${d.box[k]} vs ${want[i].box[k]}`,
      );
    }
  }
}
