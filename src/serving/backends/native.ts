import type { Backend, Session } from "../backend.ts";
import { WorkerSession } from "./native_workers.ts";

/**
 * Inference workers per native model (native_workers.ts): two, one where the process may use a single core.
 * Measured on the shared 2-core box (bus.jpg at 640, decode to NMS, no HTTP, interleaved): one session on the
 * JS thread ~27 req/s at 4 clients (the thread, busy ~33 ms a request, the limit); one worker, the same; two
 * workers 36-39 req/s at the same ~50 CPU-ms a request (one's decode and letterbox overlap the other's run);
 * two workers of one intra-op thread each 35 (and 46 ms at 1 client, against 38); three of one thread 35-36.
 */
export function nativeWorkerCount(): number {
  return Math.min(2, navigator.hardwareConcurrency);
}

/**
 * onnxruntime-node's session options, from the machine, for each worker's session. Intra-op threads: one per
 * core this process may use (navigator.hardwareConcurrency follows CPU affinity and cgroup quotas), so a request
 * alone on the server runs on every core; the default counts physical cores, which can leave a core idle. One
 * inter-op thread, sequential execution: YOLOv5 is a chain, and the parallel executor measured twice as slow.
 * No spinning: a pool thread that busy-waits for work burns a core that the next request's decode, another run
 * or a fine-tune could use (measured on a loaded 2-core box: 86 CPU-ms per run spinning, 44 not), for ~10% of
 * single-run latency on an idle box; with both workers busy, spinning took 80 CPU-ms a request against 50 and
 * cut req/s at 4 clients from ~37 to ~21.
 */
export function nativeSessionOptions() {
  return {
    graphOptimizationLevel: "all",
    intraOpNumThreads: navigator.hardwareConcurrency,
    interOpNumThreads: 1,
    executionMode: "sequential",
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  } as const;
}

/**
 * onnxruntime-node: the native CPU engine (runs under Deno through npm: and N-API), in inference workers that
 * run whole detect requests off the JS thread. Loaded in the workers, so that a platform without its prebuilt
 * binary can still fall back to wasm.
 */
export const nativeBackend: Backend = {
  name: "native",
  createSession(onnx, inputName, outputName): Promise<Session> {
    return WorkerSession.open(
      { onnx, inputName, outputName, options: nativeSessionOptions() },
      nativeWorkerCount(),
    );
  },
};
