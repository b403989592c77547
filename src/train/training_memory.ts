/**
 * A fine-tune job's GPU memory, estimated before the job is queued from the base model's training graph at the
 * job's (batch_size, imgsz), and checked against a budget: the server's memory budget for training and the
 * adapter's largest storage binding (one tensor is one buffer, see program_memory.ts). A job refused here would
 * otherwise sit in the queue and then fail to allocate, or take the machine's memory with it.
 *
 * @example
 * ```ts
 * const need = estimateTrainingMemory(OnnxModel.parse(bytes), 16, 640);
 * checkTrainingMemory(need, { totalBytes: 8 << 30, maxTensorBytes: 1 << 30 });
 * ```
 * @module
 */
import { ensureRuntimeDir } from "../gpu/runtime_dir.ts";
import { buildTrainGraph, inferShapes } from "../onnx/graph.ts";
import { type OnnxModel, tensorDims } from "../onnx/model.ts";

/** What a job needs: all buffers together, and its largest tensor (which must fit one storage binding). */
export interface TrainingMemory {
  totalBytes: number;
  largestTensorBytes: number;
  largestTensor: string;
}

export interface TrainingMemoryBudget {
  /** Most bytes one job's buffers may take together. */
  totalBytes: number;
  /** The adapter's maxStorageBufferBindingSize, or null when no adapter is known. */
  maxTensorBytes: number | null;
}

const FLOAT_BYTES = 4;
// Every tensor has a value buffer and at most one gradient buffer: an upper bound, since the program's plan
// shares Concat inputs and slices and gives frozen layers no gradient.
const BUFFERS_PER_TENSOR = 2;
// Per parameter: the weight, its gradient, two optimizer moments (Adam; SGD keeps one) and the EMA copy.
const BUFFERS_PER_PARAM = 5;

/** Why a job cannot fit; the message names the limit and the figure that is over it. */
export class TrainingMemoryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TrainingMemoryError";
  }
}

/**
 * The job's memory, or null when the model has no training graph (the job then fails with the trainer's own
 * reason, as before).
 */
export function estimateTrainingMemory(
  model: OnnxModel,
  batch: number,
  imgsz: number,
): TrainingMemory | null {
  let shapes: Map<string, number[]>;
  let params: string[];
  try {
    const graph = buildTrainGraph(model);
    shapes = inferShapes(model, graph, batch, imgsz, imgsz);
    params = graph.params.map((p) => p.name);
  } catch {
    return null;
  }
  let activations = 0;
  let largestTensorBytes = 0;
  let largestTensor = "";
  for (const [name, shape] of shapes) {
    const bytes = shape.reduce((a, b) => a * b, 1) * FLOAT_BYTES;
    activations += bytes;
    if (bytes > largestTensorBytes) [largestTensorBytes, largestTensor] = [bytes, name];
  }
  const weights = params.reduce((sum, name) => {
    const tensor = model.initializer(name);
    return sum + (tensor ? tensorDims(tensor).reduce((a, b) => a * b, 1) : 0) * FLOAT_BYTES;
  }, 0);
  return {
    totalBytes: activations * BUFFERS_PER_TENSOR + weights * BUFFERS_PER_PARAM,
    largestTensorBytes,
    largestTensor,
  };
}

/** Throws a {@link TrainingMemoryError} naming the limit when `need` does not fit `budget`. */
export function checkTrainingMemory(need: TrainingMemory, budget: TrainingMemoryBudget): void {
  const mib = (bytes: number) => `${Math.ceil(bytes / 2 ** 20)} MiB`;
  if (need.totalBytes > budget.totalBytes) {
    throw new TrainingMemoryError(
      `This job needs about ${mib(need.totalBytes)} of training memory, over the limit of ` +
        `${mib(budget.totalBytes)} (--max-train-memory): use a smaller batch_size or imgsz`,
    );
  }
  if (budget.maxTensorBytes !== null && need.largestTensorBytes > budget.maxTensorBytes) {
    throw new TrainingMemoryError(
      `This job's tensor '${need.largestTensor}' needs ${mib(need.largestTensorBytes)}, over the GPU's ` +
        `${mib(budget.maxTensorBytes)} storage binding limit: use a smaller batch_size or imgsz`,
    );
  }
}

/** Default training memory budget: the machine's memory (lavapipe and integrated GPUs allocate from it). */
export function defaultTrainingMemoryBytes(): number {
  return Deno.systemMemoryInfo().total;
}

let adapterLimit: Promise<number | null> | undefined;

/** The WebGPU adapter's maxStorageBufferBindingSize, or null without one; asked once per process. */
export function adapterTensorLimit(): Promise<number | null> {
  adapterLimit ??= (async () => {
    ensureRuntimeDir();
    try {
      const adapter = await navigator.gpu?.requestAdapter({ powerPreference: "high-performance" });
      return adapter?.limits.maxStorageBufferBindingSize ?? null;
    } catch {
      return null;
    }
  })();
  return adapterLimit;
}
