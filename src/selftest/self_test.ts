/**
 * The self-test `kestrel doctor` runs on the bundled default model: one detect on a synthetic image (the kind of
 * data the model was trained on) through the chosen inference backend, and one training step on WebGPU whose
 * forward pass is checked against onnxruntime running the same model on the CPU.
 */
import sharp from "sharp";
import { parseFinetuneConfig } from "../config/finetune.ts";
import { readF32 } from "../gpu/buffers.ts";
import type { Gpu } from "../gpu/device.ts";
import { OnnxModel } from "../onnx/model.ts";
import type { Backend } from "../serving/backend.ts";
import { nativeThisThreadBackend } from "../serving/backends/native.ts";
import { wasmBackend } from "../serving/backends/web.ts";
import { detect } from "../serving/detector.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import { ModelPool } from "../serving/pool.ts";
import { DEFAULT_DETECT_OPTIONS } from "../serving/postprocess.ts";
import { Rng } from "../train/data/rng.ts";
import { decodeHeads } from "../train/evaluate_decode.ts";
import { boxIou } from "../train/metrics.ts";
import { TrainProgram } from "../train/program.ts";
import { synthImage } from "../train/synth.ts";

export interface CheckResult {
  ok: boolean;
  detail: string;
}

/** The synthetic image's seed: any seed works; a fixed one makes the doctor's output comparable across boxes. */
const IMAGE_SEED = 15;
/** A drawn shape counts as found by a detection of its class at this IoU (val.py's mAP@0.5 threshold). */
const MATCH_IOU = 0.5;
/**
 * Relative L2 distance allowed between the WebGPU training forward and onnxruntime's CPU output: both are float32
 * with sums in different orders (tests/train/program_test.ts holds the program to 1e-5 against its CPU reference);
 * a wrong kernel gives order 1e-1.
 */
const FORWARD_REL_L2 = 1e-5;

/** One synthetic image at the model's input size: PNG bytes, the NCHW 0..1 tensor and its labels. */
export interface TestImage {
  png: Uint8Array;
  chw: Float32Array;
  /** [cls, cx, cy, w, h], normalised */
  labels: number[][];
}

export async function testImage(imgsz: number): Promise<TestImage> {
  const { rgb, labels } = synthImage(imgsz, new Rng(IMAGE_SEED));
  const png = await sharp(rgb, { raw: { width: imgsz, height: imgsz, channels: 3 } }).png().toBuffer();
  const n = imgsz * imgsz;
  const chw = new Float32Array(3 * n);
  for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) chw[c * n + p] = rgb[p * 3 + c] / 255;
  return { png: new Uint8Array(png), chw, labels };
}

/** Detects on the synthetic image through `backend`; ok when every drawn shape is found. */
export async function detectCheck(
  backend: Backend,
  modelBytes: Uint8Array,
  image: TestImage,
): Promise<CheckResult> {
  const pool = new ModelPool(backend);
  try {
    await pool.swap("self-test", 1, modelBytes);
    const result = await detect(pool.get("self-test")!, image.png, DEFAULT_DETECT_OPTIONS);
    const { width, height } = result.image;
    const found = image.labels.filter(([cls, cx, cy, w, h]) => {
      const want = [(cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height];
      return result.detections.some((d) =>
        d.class_id === cls && boxIou([d.box.x1, d.box.y1, d.box.x2, d.box.y2], want) >= MATCH_IOU
      );
    }).length;
    return {
      ok: found === image.labels.length,
      detail: `${backend.name}: found ${found} of ${image.labels.length} drawn shapes ` +
        `(${result.detections.length} detections, ${result.timings_ms.total.toFixed(0)} ms)`,
    };
  } finally {
    await pool.close();
  }
}

function relL2(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += b[i] ** 2;
  }
  return Math.sqrt(num / den);
}

/** onnxruntime on the CPU: the native build where it loads, else the wasm build. */
async function cpuOutput(modelBytes: Uint8Array, chw: Float32Array): Promise<Float32Array> {
  const spec = readModelSpec(modelBytes, "self-test model");
  for (const backend of [nativeThisThreadBackend, wasmBackend]) {
    let session;
    try {
      session = await backend.createSession(modelBytes, spec.inputName, spec.outputName);
    } catch (err) {
      if (backend === wasmBackend) throw err;
      continue;
    }
    try {
      return (await session.run({ data: chw, dims: [1, 3, spec.imgsz, spec.imgsz] })).data;
    } finally {
      await session.release();
    }
  }
  throw new Error("unreachable: the wasm backend either answers or throws");
}

/**
 * One training step of the model on the GPU (forward, loss, backward) on the synthetic image and its labels:
 * ok when the forward matches onnxruntime's CPU output and the loss and every gradient are finite.
 */
export async function trainingCheck(
  gpu: Gpu,
  modelBytes: Uint8Array,
  finetuneConfig: unknown,
  image: TestImage,
): Promise<CheckResult> {
  const model = OnnxModel.parse(modelBytes);
  const { imgsz } = readModelSpec(modelBytes, "self-test model");
  const config = parseFinetuneConfig(finetuneConfig, "the default model's fine-tune config");
  const hyp = { ...config.hyp, label_smoothing: config.label_smoothing };
  // The forward in eval mode, as the model is served: a training forward normalises with batch statistics.
  const evaluation = TrainProgram.create(gpu.device, model, { batch: 1, imgsz, training: false });
  const [gpuOut] = decodeHeads(await evaluation.forwardLayers(image.chw, 1), evaluation.graph.yolo, 1);
  const forwardError = relL2(gpuOut, await cpuOutput(modelBytes, image.chw));
  const targets = new Float32Array(image.labels.flatMap((label) => [0, ...label]));
  const program = TrainProgram.create(gpu.device, model, { batch: 1, imgsz, hyp });
  const items = await program.step(image.chw, targets, 1);
  const grads = await readF32(gpu.device, program.grads!, program.layout.size);
  const gradsFinite = grads.every(Number.isFinite) && grads.some((g) => g !== 0);
  const lossFinite = Number.isFinite(items.loss) && items.loss > 0;
  return {
    ok: forwardError <= FORWARD_REL_L2 && gradsFinite && lossFinite,
    detail:
      `forward vs onnxruntime CPU: relative L2 ${forwardError.toExponential(1)} (limit ${FORWARD_REL_L2}); ` +
      `loss ${items.loss.toFixed(4)}${lossFinite ? "" : " (not finite)"}; ` +
      `gradients ${gradsFinite ? "finite" : "NOT finite or all zero"}`,
  };
}
