/**
 * detect_e2e: median end-to-end HTTP latency of POST /v1/models/{name}/detect for bus.jpg at 640 on the native
 * backend, against the best median raw onnxruntime-node `session.run` of the same model over thread settings
 * (onnxruntime's defaults, 1 thread, one per core, each with and without spinning), all measured in the same
 * run (interleaved, so all see the same machine load), and the CPU time (server and client, this process) per
 * request, which other load on the box moves less than latency. Goal: ratio <= 1.3. `stage_floor_ratio` is the
 * ratio a server doing nothing but its own decode, letterbox and NMS (their medians here) around the best raw
 * run would reach: a request's stages follow one another, so what they take bounds the ratio from below.
 * Needs the reference data (src/config/reference_dir.ts); reports `skipped` without it.
 */
import * as ort from "../serving/backends/ort_native.ts";
import { startServer } from "../api/server.ts";
import { ServerConfigSchema } from "../config/server.ts";
import { decodeImage } from "../image/decode.ts";
import { letterbox } from "../image/letterbox.ts";
import { missingReferenceFiles, missingReferenceMessage, referencePath } from "../config/reference_dir.ts";
import { nativeSessionOptions, nativeWorkerThreads } from "../serving/backends/native.ts";
import { median, round2 } from "./support/stats.ts";
import process from "node:process";

const REFERENCE_FILES = ["models/yolov5n.onnx", "images/bus.jpg"];
const MODEL = referencePath("models/yolov5n.onnx");
const IMAGE = referencePath("images/bus.jpg");
const IMGSZ = 640;
const WARMUP = 5;
const ITERATIONS = 40;
const BLOCK = 5;
export const GOAL_RATIO = 1.3;

const spinning = (spin: boolean) => ({ session: { intra_op: { allow_spinning: spin ? "1" : "0" } } });
/** The raw sessions compared; `server` is the server's own settings. */
const RAW_SETTINGS: Record<string, ort.InferenceSession.SessionOptions> = {
  server: nativeSessionOptions(),
  default: { graphOptimizationLevel: "all" },
  threads_1: { graphOptimizationLevel: "all", intraOpNumThreads: 1 },
  threads_per_core_spin: {
    graphOptimizationLevel: "all",
    intraOpNumThreads: navigator.hardwareConcurrency,
    extra: spinning(true),
  },
  threads_per_core_no_spin: {
    graphOptimizationLevel: "all",
    intraOpNumThreads: navigator.hardwareConcurrency,
    extra: spinning(false),
  },
};

export async function bench(): Promise<Record<string, unknown>> {
  const missing = missingReferenceFiles(REFERENCE_FILES);
  if (missing.length) return { skipped: missingReferenceMessage(missing) };
  const image = await Deno.readFile(IMAGE);
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-bench-" });
  const server = await startServer(
    ServerConfigSchema.parse({ port: 0, models: [MODEL], backend: "native", dataDir }),
  );
  const raws: Record<string, ort.InferenceSession> = {};
  for (const [name, options] of Object.entries(RAW_SETTINGS)) {
    raws[name] = await ort.InferenceSession.create(MODEL, options);
  }
  try {
    await server.ready;
    const url = `${server.url}/v1/models/yolov5n/detect`;
    const { tensor } = letterbox(await decodeImage(image), IMGSZ);
    const feeds = { images: new ort.Tensor("float32", tensor, [1, 3, IMGSZ, IMGSZ]) };
    const e2e: number[] = [];
    /** CPU time of this process (server and client) over the counted requests. */
    let e2eCpuMs = 0;
    const rawRuns: Record<string, number[]> = {};
    const stages: Record<string, number[]> = {};
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
    const runRaw = async (raw: ort.InferenceSession) => {
      const t = performance.now();
      await raw.run(feeds);
      return performance.now() - t;
    };
    for (let i = 0; i < WARMUP; i++) {
      await request();
      for (const raw of Object.values(raws)) await runRaw(raw);
    }
    // Alternate blocks rather than single calls: onnxruntime's pool threads spin for a while after a run, and
    // that spin would otherwise land on the other measurement. The first call of each block is not counted.
    for (let round = 0; e2e.length < ITERATIONS; round++) {
      for (let i = 0; i <= BLOCK; i++) {
        const cpu = process.cpuUsage();
        const { elapsed, timings } = await request();
        if (i === 0) continue;
        const used = process.cpuUsage(cpu);
        e2eCpuMs += (used.user + used.system) / 1000;
        e2e.push(elapsed);
        for (const [k, v] of Object.entries(timings)) (stages[k] ??= []).push(v);
      }
      for (const [name, raw] of Object.entries(raws)) {
        for (let i = 0; i <= BLOCK; i++) {
          const elapsed = await runRaw(raw);
          if (i > 0) (rawRuns[name] ??= []).push(elapsed);
        }
      }
    }
    const e2eMedian = median(e2e);
    const rawMedians = Object.fromEntries(Object.entries(rawRuns).map(([k, v]) => [k, round2(median(v))]));
    const [bestRaw, rawMedian] = Object.entries(rawMedians).sort((a, b) => a[1] - b[1])[0];
    const stageMedians = Object.fromEntries(Object.entries(stages).map(([k, v]) => [k, round2(median(v))]));
    const aroundRun = stageMedians.decode + stageMedians.preprocess + stageMedians.postprocess;
    return {
      model: "yolov5n",
      image: "bus.jpg",
      imgsz: IMGSZ,
      backend: "native",
      inference_worker_threads: nativeWorkerThreads(),
      iterations: ITERATIONS,
      e2e_median_ms: round2(e2eMedian),
      e2e_cpu_ms_per_request: round2(e2eCpuMs / e2e.length),
      raw_session_run_median_ms: rawMedians,
      best_raw: bestRaw,
      ratio: round2(e2eMedian / rawMedian),
      goal_ratio: GOAL_RATIO,
      stage_floor_ratio: round2((rawMedian + aroundRun) / rawMedian),
      server_stage_median_ms: stageMedians,
    };
  } finally {
    for (const raw of Object.values(raws)) await raw.release();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
}
