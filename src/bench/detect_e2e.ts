/**
 * detect_e2e: median end-to-end HTTP latency of POST /v1/models/{name}/detect for bus.jpg at 640 on the native
 * backend, against the median raw onnxruntime-node `session.run` of the same model measured in the same run
 * (interleaved, so both see the same machine load). Goal: ratio <= 1.3. Needs the reference data
 * (src/config/reference_dir.ts); reports `skipped` without it.
 */
import * as ort from "../serving/backends/ort_native.ts";
import { decodeImage } from "../image/decode.ts";
import { letterbox } from "../image/letterbox.ts";
import { missingReferenceFiles, missingReferenceMessage, referencePath } from "../config/reference_dir.ts";
import { alternateBlocks, withServerAndSession } from "./support/server_vs_session.ts";
import { median, round2 } from "./support/stats.ts";

const REFERENCE_FILES = ["models/yolov5n.onnx", "images/bus.jpg"];
const MODEL = referencePath("models/yolov5n.onnx");
const IMAGE = referencePath("images/bus.jpg");
const IMGSZ = 640;
const WARMUP = 5;
const ITERATIONS = 40;
const BLOCK = 5;
export const GOAL_RATIO = 1.3;

export async function bench(): Promise<Record<string, unknown>> {
  const missing = missingReferenceFiles(REFERENCE_FILES);
  if (missing.length) return { skipped: missingReferenceMessage(missing) };
  const image = await Deno.readFile(IMAGE);
  return await withServerAndSession(MODEL, async (server, raw) => {
    const url = `${server.url}/v1/models/yolov5n/detect`;
    const { tensor } = letterbox(await decodeImage(image), IMGSZ);
    const feeds = { images: new ort.Tensor("float32", tensor, [1, 3, IMGSZ, IMGSZ]) };
    const request = async () => {
      const t = performance.now();
      const res = await fetch(url, {
        method: "POST",
        body: image,
        headers: { "content-type": "image/jpeg" },
      });
      const body = await res.json();
      const elapsed = performance.now() - t;
      if (res.status !== 200) throw new Error(`detect answered ${res.status}: ${JSON.stringify(body)}`);
      return { elapsed, timings: body.timings_ms as Record<string, number> };
    };
    const runRaw = async () => {
      const t = performance.now();
      await raw.run(feeds);
      return performance.now() - t;
    };
    for (let i = 0; i < WARMUP; i++) await request(), await runRaw();
    const runs = await alternateBlocks(request, runRaw, { iterations: ITERATIONS, block: BLOCK });
    const stages: Record<string, number[]> = {};
    for (const { timings } of runs.first) {
      for (const [k, v] of Object.entries(timings)) (stages[k] ??= []).push(v);
    }
    const e2eMedian = median(runs.first.map((r) => r.elapsed));
    const rawMedian = median(runs.second);
    return {
      model: "yolov5n",
      image: "bus.jpg",
      imgsz: IMGSZ,
      backend: "native",
      iterations: ITERATIONS,
      e2e_median_ms: round2(e2eMedian),
      raw_session_run_median_ms: round2(rawMedian),
      ratio: round2(e2eMedian / rawMedian),
      goal_ratio: GOAL_RATIO,
      server_stage_median_ms: Object.fromEntries(
        Object.entries(stages).map(([k, v]) => [k, round2(median(v))]),
      ),
    };
  });
}
