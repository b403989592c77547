/** The messages between an inference worker (native_worker_entry.ts) and its owner (native_workers.ts). */
import type { ImageErrorKind } from "../../image/errors.ts";
import type { ImageDetections, ImageJob } from "../backend.ts";

/** Main thread -> worker. `run` and `detect` are answered by `id`; one at a time per worker. */
export type ToInferenceWorker =
  | {
    type: "load";
    onnx: Uint8Array;
    inputName: string;
    outputName: string;
    options: Record<string, unknown>;
  }
  | { type: "run"; id: number; data: Float32Array; dims: number[] }
  | { type: "detect"; id: number } & ImageJob
  /** Release the session (the worker is terminated next). */
  | { type: "release" };

/** Worker -> main thread. A failed call says whether it was the image (its ImageError kind) or the engine. */
export type FromInferenceWorker =
  | { type: "loaded" }
  | { type: "load_failed"; message: string }
  | { type: "released" }
  | { type: "ran"; id: number; data: Float32Array; dims: number[] }
  | { type: "detected"; id: number; result: ImageDetections }
  | { type: "failed"; id: number; message: string; imageError?: ImageErrorKind };
