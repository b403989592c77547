/**
 * detect_throughput: requests per second and latency percentiles of POST /v1/models/{name}/detect for bus.jpg
 * at 640 on the native backend, with 1, 4 and 16 clients sending at once (each waits for its answer before the
 * next request). The clients run in a Worker, off the server's event loop. Goal: >= 35 req/s at 4+ clients on a
 * quiet 2-core box; p99 bounded by the queue limit (--max-queue, 16 by default, so 16 clients are never shed).
 * Each run also reports the CPU time this process (server and clients) spent per request, and the rate that
 * would allow with every core busy: a ceiling that other load on the box does not move, unlike req/s.
 */
import { missingReferenceFiles, missingReferenceMessage, referencePath } from "../config/reference_dir.ts";
import process from "node:process";
import { startServer } from "../api/server.ts";
import { ServerConfigSchema } from "../config/server.ts";
import type { LoadRequest, LoadResult } from "./load/http_clients.ts";
import { nativeWorkerThreads } from "../serving/backends/native.ts";
import { spawnWorker } from "../workers/spawn.ts";

const REFERENCE_FILES = ["models/yolov5n.onnx", "images/bus.jpg"];
const MODEL = referencePath("models/yolov5n.onnx");
const IMAGE = referencePath("images/bus.jpg");
const IMGSZ = 640;
const CLIENTS = [1, 4, 16];
const WARMUP_REQUESTS = 8;
const REQUESTS = 120;
export const GOAL_REQ_PER_S = 35;

const round = (v: number) => Math.round(v * 100) / 100;
const percentile = (sorted: number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];

function runLoad(worker: Worker, request: LoadRequest): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    worker.onmessage = (e: MessageEvent<LoadResult>) => resolve(e.data);
    worker.onerror = (e) => reject(new Error(e.message));
    worker.postMessage(request);
  });
}

export async function bench(): Promise<Record<string, unknown>> {
  const missing = missingReferenceFiles(REFERENCE_FILES);
  if (missing.length) return { skipped: missingReferenceMessage(missing) };
  const body = await Deno.readFile(IMAGE);
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-bench-" });
  const server = await startServer(
    ServerConfigSchema.parse({ port: 0, models: [MODEL], backend: "native", dataDir }),
  );
  const worker = spawnWorker(new URL("./load/http_clients.ts", import.meta.url));
  try {
    await server.ready;
    const base = { url: `${server.url}/v1/models/yolov5n/detect`, body, contentType: "image/jpeg" };
    const runs: Record<string, unknown> = {};
    for (const clients of CLIENTS) {
      await runLoad(worker, { ...base, clients, requests: WARMUP_REQUESTS });
      const cpuBefore = process.cpuUsage();
      const { latencies, statuses, elapsedMs } = await runLoad(worker, {
        ...base,
        clients,
        requests: REQUESTS,
      });
      const cpu = process.cpuUsage(cpuBefore);
      const cpuMsPerRequest = (cpu.user + cpu.system) / 1000 / REQUESTS;
      const sorted = latencies.sort((a, b) => a - b);
      runs[`clients_${clients}`] = {
        req_per_s: round(latencies.length / (elapsedMs / 1000)),
        p50_ms: round(percentile(sorted, 0.5)),
        p99_ms: round(percentile(sorted, 0.99)),
        statuses,
        cpu_ms_per_request: round(cpuMsPerRequest),
        cpu_bound_req_per_s: round(navigator.hardwareConcurrency * 1000 / cpuMsPerRequest),
      };
    }
    return {
      model: "yolov5n",
      image: "bus.jpg",
      imgsz: IMGSZ,
      backend: "native",
      requests_per_run: REQUESTS,
      threads: navigator.hardwareConcurrency,
      inference_worker_threads: nativeWorkerThreads(),
      ...runs,
      goal_req_per_s_at_4: GOAL_REQ_PER_S,
    };
  } finally {
    worker.terminate();
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
}
