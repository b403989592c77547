import type { Detection, DetectOptions } from "./postprocess.ts";

/** The inference engines Kestrel can run a model on; `auto` picks one at startup (see selectBackend). */
export type BackendName = "webgpu" | "wasm" | "native";
export const BACKEND_CHOICES = ["auto", "webgpu", "wasm", "native"] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** A float32 tensor crossing the backend boundary (NCHW input, (1, N, 5+nc) output). */
export interface Tensor {
  data: Float32Array;
  dims: number[];
}

/** One encoded image for a session that runs the whole per-image pipeline itself (Session.detectImage). */
export interface ImageJob {
  bytes: Uint8Array;
  /** The model's square input side and class count (the letterbox's size, the output's row width - 5). */
  imgsz: number;
  nc: number;
  opts: DetectOptions;
  maxPixels?: number;
}

/** What Session.detectImage found, with the time (ms) each stage took where it ran. */
export interface ImageDetections {
  width: number;
  height: number;
  detections: Detection[];
  timings: { decode: number; preprocess: number; run: number; postprocess: number };
}

/**
 * One loaded model on one engine. Created once per model version and reused for every request; the caller
 * keeps at most `parallelRuns` calls (`run` and `detectImage` together) going at once (default 1:
 * onnxruntime-web rejects overlapping runs). A session with `detectImage` decodes, letterboxes, runs and
 * post-processes an image in one call (off the JS thread); serving then uses it instead of doing those itself.
 */
export interface Session {
  parallelRuns?: number;
  run(input: Tensor): Promise<Tensor>;
  detectImage?(job: ImageJob): Promise<ImageDetections>;
  release(): Promise<void>;
}

export interface Backend {
  name: BackendName;
  /**
   * The same engine on the calling thread, where serving runs it elsewhere (the native engine's workers): for a
   * model built to be checked once rather than served, which the other threads would only slow down.
   */
  thisThread?: Backend;
  createSession(onnx: Uint8Array, inputName: string, outputName: string): Promise<Session>;
}
