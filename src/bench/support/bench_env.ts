/**
 * The knobs of the training benches (finetune_step, conv_shapes), read from KESTREL_BENCH_* variables so that one
 * `deno task bench` line can be rerun at another size, batch or precision (scripts/gpu_bench.sh sets them). Unset,
 * each bench measures what its README line says. A value that is not what the variable takes is an error, not a
 * silent default.
 * @module
 */

/** Options of the fine-tune step and conv benches. */
export interface TrainBenchOptions {
  batch: number;
  /** Input size; the conv shapes scale with it (YOLOv5 is fully convolutional, strides up to 32). */
  imgsz: number;
  /** Untimed steps first, at least one (pipeline creation and first-use allocation happen there). */
  warmup: number;
  /** Timed steps per round, at most. */
  steps: number;
  /** A round stops after this many seconds of timed steps, once it has timed at least one. */
  seconds: number;
  /** Mixed precision (config `amp`); finetune_step says when the training program cannot do it. */
  amp: boolean;
  /** Images/s only: no roofline rounds, no per-op-class replay, no dispatch profile. */
  throughputOnly: boolean;
}

const PREFIX = "KESTREL_BENCH_";
/** YOLOv5's largest stride: every input size must be a multiple of it. */
const MAX_STRIDE = 32;

function integer(name: string, fallback: number, min: number): number {
  const raw = Deno.env.get(PREFIX + name);
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min) {
    throw new Error(`${PREFIX}${name}=${raw}: expected an integer >= ${min}`);
  }
  return value;
}

function flag(name: string): boolean {
  const raw = Deno.env.get(PREFIX + name);
  if (raw === undefined || raw === "" || raw === "false" || raw === "0") return false;
  if (raw === "true" || raw === "1") return true;
  throw new Error(`${PREFIX}${name}=${raw}: expected true or false`);
}

/** The options for a bench whose defaults (what its README line reports) are `defaults`. */
export function trainBenchOptions(
  defaults: { batch: number; imgsz: number; steps: number },
): TrainBenchOptions {
  const imgsz = integer("IMGSZ", defaults.imgsz, MAX_STRIDE);
  if (imgsz % MAX_STRIDE) throw new Error(`${PREFIX}IMGSZ=${imgsz}: must be a multiple of ${MAX_STRIDE}`);
  return {
    batch: integer("BATCH", defaults.batch, 1),
    imgsz,
    warmup: integer("WARMUP", 1, 1),
    steps: integer("STEPS", defaults.steps, 1),
    seconds: integer("SECONDS", Number.POSITIVE_INFINITY, 1),
    amp: flag("AMP"),
    throughputOnly: flag("THROUGHPUT_ONLY"),
  };
}
