import assert from "node:assert/strict";
import { decodeImage, type RgbImage } from "../../src/image/decode.ts";
import { letterbox } from "../../src/image/letterbox.ts";
import type { Backend } from "../../src/serving/backend.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { wasmBackend, webgpuBackend } from "../../src/serving/backends/web.ts";
import { DEFAULT_DETECT_OPTIONS, type Detection, postprocess } from "../../src/serving/postprocess.ts";
import { selectBackend } from "../../src/serving/select.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";
import { assertSameDetections } from "../_helpers/same_detections.ts";

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");

/** A model, an image letterboxed for it and its class count: what each backend runs. */
interface Case {
  name: string;
  model: Uint8Array;
  image: RgbImage;
  imgsz: number;
  nc: number;
}

async function loadCase(name: string, model: URL, image: URL, imgsz: number, nc: number): Promise<Case> {
  return {
    name,
    model: await Deno.readFile(model),
    image: await decodeImage(await Deno.readFile(image)),
    imgsz,
    nc,
  };
}

/** The embedded default model (3 classes at 128) on a fixture image: always there. */
const DEFAULT_CASE = await loadCase(
  "default model, shapes_0000.png",
  new URL("../../models/default.onnx", import.meta.url),
  new URL("../fixtures/shapes/images/shapes_0000.png", import.meta.url),
  128,
  3,
);
/** yolov5n (80 classes at 640) on bus.jpg: only where the reference data is there. */
const YOLOV5N_CASE = REFERENCE.missing ? null : await loadCase(
  "yolov5n, bus.jpg",
  REFERENCE.url("models/yolov5n.onnx"),
  REFERENCE.url("images/bus.jpg"),
  640,
  80,
);
const CASES = YOLOV5N_CASE ? [DEFAULT_CASE, YOLOV5N_CASE] : [DEFAULT_CASE];

/** Strides of a P5 YOLOv5 model: the output has 3 anchors per cell of each level's grid. */
const STRIDES = [8, 16, 32];

async function detections(backend: Backend, c: Case): Promise<Detection[]> {
  const { tensor, box } = letterbox(c.image, c.imgsz);
  const session = await backend.createSession(c.model, "images", "output0");
  try {
    const out = await session.run({ data: tensor, dims: [1, 3, c.imgsz, c.imgsz] });
    const rows = STRIDES.reduce((n, s) => n + 3 * (c.imgsz / s) ** 2, 0);
    assert.deepEqual(out.dims, [1, rows, 5 + c.nc]);
    return postprocess(out.data, c.nc, DEFAULT_DETECT_OPTIONS, box, c.image.width, c.image.height);
  } finally {
    await session.release();
  }
}

const native = new Map<Case, Detection[]>();
for (const c of CASES) native.set(c, await detections(nativeBackend, c));

referenceTest(REFERENCE, "native backend finds bus.jpg's reference classes", () => {
  assert.deepEqual(native.get(YOLOV5N_CASE!)!.map((d) => d.classId), [0, 0, 0, 5]);
});

Deno.test({
  name: "wasm backend (onnxruntime-web) agrees with the native backend",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    for (const c of CASES) assertSameDetections(await detections(wasmBackend, c), native.get(c)!, c.name);
  },
});

gpuTest(
  "webgpu backend (onnxruntime-web WebGPU EP on navigator.gpu) agrees with the native backend",
  async () => {
    for (const c of CASES) assertSameDetections(await detections(webgpuBackend, c), native.get(c)!, c.name);
  },
);

Deno.test("selectBackend('auto') takes WebGPU only on a hardware adapter, else native", async () => {
  const adapter = await navigator.gpu?.requestAdapter();
  const hardware = adapter != null && !adapter.info.isFallbackAdapter;
  const { backend, reason } = await selectBackend("auto");
  assert.equal(backend.name, hardware ? "webgpu" : "native", reason);
  assert.equal((await selectBackend("wasm")).backend.name, "wasm");
});
