/**
 * The jobs subsystem's real Trainer (src/jobs/types.ts): a queued fine-tune job runs through the WGSL trainer in this process
 * (train.py's loop, yielding between iterations so serving continues), evaluates the base and the EMA model on
 * the held-out images, writes last.onnx / ema.onnx / trace.jsonl into the job's work directory, and hands the EMA
 * model to `publish` (jobs/publish.ts publishResult: a new registry version, activated per the job's policy).
 *
 * Training sits below jobs and registry (docs/architecture.md), so the job, its context and the result are
 * declared here structurally (the jobs types fit them) and the registry is reached through the two functions
 * the wiring passes in.
 *
 * @example
 * ```ts
 * const trainer = new WgslTrainer<Job>({
 *   readModel: (job) => registry.read(job.model, job.baseVersion ?? registry.model(job.model).active!),
 *   publish: (job, bytes, evals) => publishResult(registry, job, bytes, evals),
 * });
 * const jobs = await JobService.open({ dataDir, trainer });
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

/** The progress fields the trainer reports (a partial job progress record). */
export interface ProgressReport {
  epoch?: number;
  epochs?: number;
  iteration?: number;
  iterations?: number;
  lossItems?: [number, number, number];
  lr?: [number, number, number];
  imagesPerSecond?: number;
}

/** What the job queue gives one run: cancellation, progress, checkpoints and the job's directories. */
export interface TrainingContext {
  signal: AbortSignal;
  onProgress(progress: ProgressReport): void;
  checkpoint: CheckpointStore;
  datasetDir: string;
  workDir: string;
}

/** val.py's headline numbers for one model on the held-out images. */
export interface EvalMetrics {
  map50: number;
  map50_95: number;
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
    evals: { base: EvalMetrics | null; result: EvalMetrics | null },
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
    const evals = { base: headline(result.base), result: headline(result.ema) };
    return await this.deps.publish(job, result.emaBytes, evals);
  }
}

function headline(m: ValMetrics | null): EvalMetrics | null {
  return m && { map50: m.map50, map50_95: m.map50_95 };
}
