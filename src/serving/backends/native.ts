import type { Backend, Session, Tensor } from "../backend.ts";
import { WorkerSession } from "./native_workers.ts";

/**
 * The inference workers of a native model, as their intra-op thread counts: two, one on a 1-core box. The
 * first, which takes every request that arrives while the other is idle, one thread per core the process may
 * use, so that a request alone runs on every core; the second half as many (one on 2 cores), so that two runs
 * side by side split their operators over fewer threads than two per core (a 2-thread run of yolov5n at 640
 * costs ~46 CPU-ms on 2 cores, a 1-thread one ~37: the split's overhead is CPU the other run needs). Measured
 * on the shared 2-core box (bus.jpg at 640, decode to NMS without HTTP, interleaved in one run, load average
 * 2.6-3): two workers of 2 threads 32-34 ms at one client and 35-36 req/s at 4 clients (55-56 CPU-ms a
 * request); two of one thread 44-47 ms, 40-42 req/s (47-48); 2 and 1 threads, as here, 35 ms and 38-42 req/s
 * (47-51); one session on the JS thread 35 ms and 28-29 req/s (the thread, ~33 ms of work a request there, the
 * limit). Earlier, at load 4-7: one worker as the JS thread; three of one thread 35-36 req/s; two of 2 threads
 * spinning 20-22.
 */
export function nativeWorkerThreads(): number[] {
  const cores = navigator.hardwareConcurrency;
  if (cores < 2) return [1];
  return [cores, Math.max(1, Math.floor(cores / 2))];
}

/**
 * onnxruntime-node's session options for `threads` intra-op threads (see nativeWorkerThreads; the default is
 * one per core this process may use: navigator.hardwareConcurrency follows CPU affinity and cgroup quotas, where
 * onnxruntime's own default counts physical cores, which can leave a core idle). One inter-op thread,
 * sequential execution: YOLOv5 is a chain, and the parallel executor measured twice as slow. No spinning: a pool
 * thread that busy-waits for work burns a core that the next request's decode, another run or a fine-tune could
 * use (measured on a loaded 2-core box: 86 CPU-ms per run spinning, 44 not), for ~10% of single-run latency on
 * an idle box; with two workers of 2 threads busy, spinning took 80 CPU-ms a request against 50 and cut req/s at
 * 4 clients from ~37 to ~21.
 */
export function nativeSessionOptions(threads = navigator.hardwareConcurrency) {
  return {
    graphOptimizationLevel: "all",
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: "sequential",
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  } as const;
}

/**
 * onnxruntime-node on the calling thread, one run at a time: for a model built to be checked rather than served
 * (the registry's verification of an upload, the self-test), where starting two inference workers (~150-500 ms)
 * would cost far more than the check (the ONNX upload fuzz test got through 6 uploads in its 3 s instead of
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
      { onnx, inputName, outputName },
      nativeWorkerThreads().map((threads) => nativeSessionOptions(threads)),
    );
  },
};
