import type { Backend, Session, Tensor } from "../backend.ts";

/**
 * Runs one session takes at once. onnxruntime-node 1.30 runs a session synchronously on the JS thread (its
 * `run` calls the binding inside a setImmediate), so two runs never overlap each other or the thread's other
 * work (letterbox, HTTP): the second starts as the first ends. Decode does overlap them (sharp decodes on its
 * own thread). Measured on the loaded shared 2-core box, 1 against 2: no difference in req/s, p50 or CPU per
 * request at 2 and 4 clients beyond the noise; a Worker per session (leaving the JS thread free) cost ~4 CPU-ms
 * more per request (copies and messages) and gained no req/s.
 */
export const NATIVE_PARALLEL_RUNS = 2;

/**
 * onnxruntime-node's session options, from the machine. Intra-op threads: one per core this process may use
 * (navigator.hardwareConcurrency follows CPU affinity and cgroup quotas); the default counts physical cores,
 * which can leave a core idle. One inter-op thread, sequential execution: YOLOv5 is a chain, and the parallel
 * executor measured twice as slow. No spinning: a pool thread that busy-waits for work burns a core that the
 * next request's decode, another run or a fine-tune could use (measured on a loaded 2-core box: 86 CPU-ms per
 * run spinning, 44 not), for ~10% of single-run latency on an idle box.
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
 * onnxruntime-node: the native CPU engine (runs under Deno through npm: and N-API). Imported on first use so
 * that a platform without its prebuilt binary can still fall back to wasm. Its sessions take concurrent runs.
 */
export const nativeBackend: Backend = {
  name: "native",
  async createSession(onnx, inputName, outputName): Promise<Session> {
    const ort = await import("./ort_native.ts");
    const session = await ort.InferenceSession.create(onnx, nativeSessionOptions());
    return {
      parallelRuns: NATIVE_PARALLEL_RUNS,
      async run(input: Tensor): Promise<Tensor> {
        const feeds = { [inputName]: new ort.Tensor("float32", input.data, input.dims) };
        const out = (await session.run(feeds))[outputName];
        return { data: out.data as Float32Array, dims: [...out.dims] };
      },
      release: () => session.release(),
    };
  },
};
