/**
 * deepstack_latency: what Frigate's `deepstack` detector sees. Frigate POSTs each frame as a JPEG of its
 * model's input size (320x320 here) to `/v1/vision/detection` with `api_key` and `image` form fields, and gives
 * a request `api_timeout` = 100 ms by default. Reports p50/p99 of that round trip and the share of requests
 * inside 100 ms, beside p50/p99 of a raw onnxruntime-node `session.run` of the same model on the same frames
 * (blocks interleaved, so both see the same machine load). Runs the embedded default model, and yolov5n from
 * the reference data when it is there (src/config/reference_dir.ts) (a static 640 export: the server letterboxes the 320 frames up to 640).
 */
import * as ort from "../serving/backends/ort_native.ts";
import sharp from "sharp";
import { missingReferenceFiles, referencePath } from "../config/reference_dir.ts";
import { DEFAULT_MODEL_PATH } from "../config/server.ts";
import { decodeImage } from "../image/decode.ts";
import { letterbox } from "../image/letterbox.ts";
import { readModelSpec } from "../serving/model_spec.ts";
import { Rng } from "../train/data/rng.ts";
import { synthImage } from "../train/synth.ts";
import { alternateBlocks, withServerAndSession } from "./support/server_vs_session.ts";
import { quantile, round2 } from "./support/stats.ts";

const YOLOV5N = referencePath("models/yolov5n.onnx");
const FRAME = 320;
/** PIL's default JPEG quality, which Frigate's `image.save(format="JPEG")` uses. */
const JPEG_QUALITY = 75;
const FRAMES = 8;
const WARMUP = 10;
const ITERATIONS = 200;
const BLOCK = 10;
/** Frigate's DeepstackDetectorConfig.api_timeout default. */
export const FRIGATE_TIMEOUT_MS = 100;

async function frames(): Promise<Uint8Array<ArrayBuffer>[]> {
  return await Promise.all(Array.from({ length: FRAMES }, async (_, i) => {
    const { rgb } = synthImage(FRAME, new Rng(100 + i));
    const raw = { width: FRAME, height: FRAME, channels: 3 as const };
    return new Uint8Array(await sharp(rgb, { raw }).jpeg({ quality: JPEG_QUALITY }).toBuffer());
  }));
}

async function measure(modelPath: string, jpegs: Uint8Array<ArrayBuffer>[]) {
  const { imgsz, inputName } = readModelSpec(await Deno.readFile(modelPath), modelPath);
  return await withServerAndSession(modelPath, async (server, raw) => {
    const url = `${server.url}/v1/vision/detection`;
    const tensors = await Promise.all(jpegs.map(async (j) => letterbox(await decodeImage(j), imgsz).tensor));
    let next = 0;
    const request = async () => {
      const jpeg = jpegs[next++ % jpegs.length];
      const form = new FormData();
      form.append("api_key", "");
      form.append("image", new Blob([jpeg]), "image");
      const t = performance.now();
      const res = await fetch(url, { method: "POST", body: form });
      const body = await res.json();
      const elapsed = performance.now() - t;
      if (!body.success) throw new Error(`detection answered ${res.status}: ${JSON.stringify(body)}`);
      return elapsed;
    };
    const runRaw = async () => {
      const feeds = {
        [inputName]: new ort.Tensor("float32", tensors[next++ % tensors.length], [1, 3, imgsz, imgsz]),
      };
      const t = performance.now();
      await raw.run(feeds);
      return performance.now() - t;
    };
    for (let i = 0; i < WARMUP; i++) await request(), await runRaw();
    const { first: http, second: session } = await alternateBlocks(request, runRaw, {
      iterations: ITERATIONS,
      block: BLOCK,
    });
    return {
      imgsz,
      detection_p50_ms: round2(quantile(http, 0.5)),
      detection_p99_ms: round2(quantile(http, 0.99)),
      within_frigate_timeout: round2(http.filter((ms) => ms <= FRIGATE_TIMEOUT_MS).length / http.length),
      session_run_p50_ms: round2(quantile(session, 0.5)),
      session_run_p99_ms: round2(quantile(session, 0.99)),
    };
  });
}

export async function bench(): Promise<Record<string, unknown>> {
  const jpegs = await frames();
  const models: Record<string, string> = { default: DEFAULT_MODEL_PATH };
  if (missingReferenceFiles(["models/yolov5n.onnx"]).length === 0) models.yolov5n = YOLOV5N;
  const results: Record<string, unknown> = {};
  for (const [name, path] of Object.entries(models)) results[name] = await measure(path, jpegs);
  return {
    frame: `${FRAME}x${FRAME} JPEG q${JPEG_QUALITY}`,
    route: "POST /v1/vision/detection (multipart api_key + image, as Frigate)",
    backend: "native",
    iterations: ITERATIONS,
    frigate_timeout_ms: FRIGATE_TIMEOUT_MS,
    // the machine is shared: the figures mean little without the load they were taken under
    load_average_1m: round2(Deno.loadavg()[0]),
    ...results,
  };
}
