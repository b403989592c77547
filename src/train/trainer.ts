/**
 * The WGSL trainer of one fine-tune job: trains it (runFinetune: train.py's loop, checkpointing after every
 * epoch and where it is suspended), evaluates the base and the EMA model on the held-out images, writes
 * last.onnx / ema.onnx / trace.jsonl into the job's work directory, and hands the EMA model to `publish`
 * (jobs/publish.ts publishResult: a new registry version, activated per the job's policy). The server runs it inside a Web
 * Worker of its own per job (api/worker_trainer.ts), so a step's GPU work never blocks serving; the worker
 * reaches the registry and the job's checkpoints through messages to the main thread.
 *
 * Training sits below jobs and registry (docs/architecture.md), so the progress, context and result types
 * of a run are declared here and the jobs subsystem's Trainer contract (src/jobs/types.ts) is built from
 * them; the registry is reached through the two functions the wiring passes in.
 *
 * @example
 * ```ts
 * // In the job's worker (api/training_worker_entry.ts), the registry is a request to the main thread away:
 * const trainer = new WgslTrainer({
 *   readModel: () => call({ method: "readModel" }),
 *   publish: (_job, bytes, evals) => call({ method: "publish", bytes, evals }),
 * });
 * const result = await trainer.run(job, { signal, onProgress, checkpoint, datasetDir, workDir });
 * ```
 * @module
 */
import { getGpu, type Gpu } from "../gpu/device.ts";
import type { FinetuneConfig } from "../config/finetune.ts";
import { OnnxModel } from "../onnx/model.ts";
import { type CheckpointStore, runFinetune } from "./finetune_run.ts";
import type { ValMetrics } from "./metrics.ts";

/** What the trainer reads of a job record. */
export interface FinetuneJob {
  id: string;
  model: string;
  baseVersion: number | null;
  config: FinetuneConfig;
}

/**
 * Where a run stands after an iteration, in the job record's names (jobs' JobProgress): the one progress type
 * from here through the worker's messages and the job queue to the record and its event stream. Built once,
 * in {@link WgslTrainer.run}, from the loop's trace line, which keeps train.py's names (`ni`, `loss_items`)
 * because trace.jsonl is compared with train.py's.
 */
export interface TrainingProgress {
  /** epoch being trained (0-based, as train.py counts) */
  epoch: number;
  epochs: number;
  /** iterations (batches) completed over the whole job */
  iteration: number;
  iterations: number;
  /** box, objectness and class loss as train.py logs them */
  lossItems: [number, number, number];
  /** learning rate per parameter group (biases, weights, norm weights) */
  lr: [number, number, number];
  imagesPerSecond: number;
}

/** What the job queue gives one run: cancellation, progress, checkpoints and the job's directories. */
export interface TrainingContext {
  /** Aborted on cancel or shutdown; the run stops between iterations and rejects with `signal.reason`. */
  signal: AbortSignal;
  /**
   * Aborted when the process stops (a drain): the run checkpoints the iteration in flight once it is done,
   * then rejects with `suspend.reason`, so a restart resumes exactly there.
   */
  suspend?: AbortSignal;
  onProgress(progress: TrainingProgress): void;
  checkpoint: CheckpointStore;
  /** the uploaded dataset (YOLO layout: images/, labels/, optionally val/) */
  datasetDir: string;
  /** an existing directory of this job's own for outputs (last.onnx, ema.onnx, trace.jsonl) */
  workDir: string;
}

/** val.py's headline numbers for one model on the held-out images. */
export interface EvalMetrics {
  map50: number;
  map50_95: number;
}

/** The base model's and the result's (EMA) evaluation; null without held-out images. */
export interface Evaluations {
  base: EvalMetrics | null;
  result: EvalMetrics | null;
}

/** The published result: the registry version holding the EMA model, whether it serves, and its metrics. */
export interface PublishedResult {
  resultVersion: number | null;
  activated: boolean | null;
  metrics: Record<string, number> | null;
}

export interface TrainerDeps<J extends FinetuneJob> {
  /** The ONNX bytes the job starts from (its base version). */
  readModel(job: Readonly<J>): Promise<Uint8Array>;
  /** Stores the EMA model as the job's result and activates it per `job.config.activate`. */
  publish(
    job: Readonly<J>,
    emaBytes: Uint8Array,
    evals: Evaluations,
  ): Promise<PublishedResult>;
  /** The device to train on (default: the process-wide one). */
  gpu?: () => Promise<Gpu>;
  /** Progress notes (default: none). */
  log?(message: string): void;
}

/** `J`: the job record type of the queue (jobs' `Job`), handed through to `readModel` and `publish`. */
export class WgslTrainer<J extends FinetuneJob = FinetuneJob> {
  constructor(private readonly deps: TrainerDeps<J>) {}

  async run(job: Readonly<J>, ctx: TrainingContext): Promise<PublishedResult> {
    const model = OnnxModel.parse(await this.deps.readModel(job));
    const gpu = await (this.deps.gpu ?? getGpu)();
    let images = 0, seconds = 0;
    const result = await runFinetune({
      gpu,
      model,
      config: job.config,
      dataDir: ctx.datasetDir,
      outDir: ctx.workDir,
      signal: ctx.signal,
      suspend: ctx.suspend,
      checkpoint: ctx.checkpoint,
      log: this.deps.log && ((message) => this.deps.log!(`job ${job.id}: ${message}`)),
      onIteration: ({ line, images: n, seconds: s }, totals) => {
        images += n;
        seconds += s;
        ctx.onProgress({
          epoch: line.epoch,
          epochs: totals.epochs,
          iteration: line.ni + 1,
          iterations: totals.iterations,
          lossItems: [line.loss_items[0], line.loss_items[1], line.loss_items[2]],
          lr: [line.lr[0], line.lr[1], line.lr[2]],
          imagesPerSecond: images / Math.max(seconds, 1e-9),
        });
      },
    });
    ctx.signal.throwIfAborted();
    const evals: Evaluations = { base: headline(result.base), result: headline(result.ema) };
    return await this.deps.publish(job, result.emaBytes, evals);
  }
}

function headline(m: ValMetrics | null): EvalMetrics | null {
  return m && { map50: m.map50, map50_95: m.map50_95 };
}
