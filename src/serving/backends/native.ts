import type { Backend, Session, Tensor } from "../backend.ts";
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
 * onnxruntime-node on the calling thread, one run at a time: for a model built to be checked rather than served
 * (the registry's verification of an upload, the self-test), where starting two inference workers (~150-500 ms)
 * would cost far more than the check (the ONNX upload fuzz test got through ~30 uploads in its 3 s instead of
 * ~1800). Imported on first use, so that a platform without its prebuilt binary can still fall back to wasm.
 */
export const nativeThisThreadBackend: Backend = {
  name: "native",
  async createSession(onnx, inputName, outputName): Promise<Session> {
    const ort = await import("./ort_native.ts");
    const session = await ort.InferenceSession.create(onnx, nativeSessionOptions());
    return {
      async run(input: Tensor): Promise<Tensor> {
        const feeds = { [inputName]: new ort.Tensor("float32", input.data, input.dims) };
        const out = (await session.run(feeds))[outputName];
        return { data: out.data as Float32Array, dims: [...out.dims] };
      },
      release: () => session.release(),
    };
  },
};

/**
 * onnxruntime-node: the native CPU engine (runs under Deno through npm: and N-API), in inference workers that
 * run whole detect requests off the JS thread. onnxruntime-node is imported here first, on first use, so that a
 * platform without its package or prebuilt binary gets a rejected session at once and can fall back to wasm: a
 * worker whose module graph cannot resolve a package can die without an error event its owner could wait for
 * (with Deno 2.9.6 the doctor of the GPU bench package, which leaves onnxruntime-node out, waited forever so).
 */
export const nativeBackend: Backend = {
  name: "native",
  thisThread: nativeThisThreadBackend,
  async createSession(onnx, inputName, outputName): Promise<Session> {
    await import("./ort_native.ts");
    return await WorkerSession.open(
      { onnx, inputName, outputName, options: nativeSessionOptions() },
      nativeWorkerCount(),
    );
  },
};
