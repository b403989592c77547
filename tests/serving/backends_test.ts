import assert from "node:assert/strict";
import { decodeImage } from "../../src/image/decode.ts";
import { letterbox } from "../../src/image/letterbox.ts";
import type { Backend } from "../../src/serving/backend.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { wasmBackend, webgpuBackend } from "../../src/serving/backends/web.ts";
import { DEFAULT_DETECT_OPTIONS, type Detection, postprocess } from "../../src/serving/postprocess.ts";
import { selectBackend } from "../../src/serving/select.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { referenceData, referenceName, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");
/** yolov5n and bus.jpg letterboxed to 640; read only where the reference data is there (else null, tests skipped). */
const input = REFERENCE.missing ? null : await (async () => {
  const model = await Deno.readFile(REFERENCE.url("models/yolov5n.onnx"));
  const image = await decodeImage(await Deno.readFile(REFERENCE.url("images/bus.jpg")));
  return { model, image, ...letterbox(image, 640) };
})();
/**
 * Engines differ only in float32 summation order. Measured on bus.jpg against native: any probability moves by at
 * most 2.8e-6 (wasm) and 4.3e-6 (WebGPU on lavapipe), box coordinates by 2e-3 px; bound at ~25x that.
 */
const MAX_CONF_DIFF = 1e-4;
/** Boxes are rounded to whole pixels, so a sub-pixel difference can flip one rounding. */
const MAX_BOX_DIFF = 1;

async function detections(backend: Backend): Promise<Detection[]> {
  const { model, image, tensor, box } = input!;
  const session = await backend.createSession(model, "images", "output0");
  try {
    const out = await session.run({ data: tensor, dims: [1, 3, 640, 640] });
    assert.deepEqual(out.dims, [1, 25200, 85]);
    return postprocess(out.data, 80, DEFAULT_DETECT_OPTIONS, box, image.width, image.height);
  } finally {
    await session.release();
  }
}

function assertSameDetections(got: Detection[], want: Detection[]): void {
  assert.deepEqual(got.map((d) => d.classId), want.map((d) => d.classId));
  for (const [i, d] of got.entries()) {
    assert.ok(Math.abs(d.confidence - want[i].confidence) <= MAX_CONF_DIFF, `confidence ${i}`);
    for (const k of ["x1", "y1", "x2", "y2"] as const) {
      assert.ok(
        Math.abs(d.box[k] - want[i].box[k]) <= MAX_BOX_DIFF,
        `box ${i}.${k}: ${d.box[k]} vs ${want[i].box[k]}`,
      );
    }
  }
}

const native = input ? await detections(nativeBackend) : [];

referenceTest(REFERENCE, "native backend finds bus.jpg's reference classes", () => {
  assert.deepEqual(native.map((d) => d.classId), [0, 0, 0, 5]);
});

Deno.test({
  name: referenceName("wasm backend (onnxruntime-web) agrees with the native backend", REFERENCE),
  ignore: REFERENCE.missing,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => assertSameDetections(await detections(wasmBackend), native),
});

gpuTest(
  "webgpu backend (onnxruntime-web WebGPU EP on navigator.gpu) agrees with the native backend",
  async () => {
    assertSameDetections(await detections(webgpuBackend), native);
  },
  REFERENCE,
);

Deno.test("selectBackend('auto') takes WebGPU only on a hardware adapter, else native", async () => {
  const adapter = await navigator.gpu?.requestAdapter();
  const hardware = adapter != null && !adapter.info.isFallbackAdapter;
  const { backend, reason } = await selectBackend("auto");
  assert.equal(backend.name, hardware ? "webgpu" : "native", reason);
  assert.equal((await selectBackend("wasm")).backend.name, "wasm");
});
