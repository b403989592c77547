/** The inference engines Kestrel can run a model on; `auto` picks one at startup (see selectBackend). */
export type BackendName = "webgpu" | "wasm" | "native";
export const BACKEND_CHOICES = ["auto", "webgpu", "wasm", "native"] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** A float32 tensor crossing the backend boundary (NCHW input, (1, N, 5+nc) output). */
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

/**
 * One loaded model on one engine. Created once per model version and reused for every request; the caller
 * keeps at most `parallelRuns` `run` calls going at once (default 1: onnxruntime-web rejects overlapping runs).
 */
export interface Session {
  parallelRuns?: number;
  run(input: Tensor): Promise<Tensor>;
  release(): Promise<void>;
}

export interface Backend {
  name: BackendName;
  createSession(onnx: Uint8Array, inputName: string, outputName: string): Promise<Session>;
}
