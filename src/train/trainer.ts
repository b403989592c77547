/**
 * The jobs subsystem's real {@link Trainer}: a queued fine-tune job runs through the WGSL trainer in this process
 * (train.py's loop, yielding between iterations so serving continues), evaluates the base and the EMA model on
 * the held-out images, writes last.onnx / ema.onnx / trace.jsonl into the job's work directory, and hands the EMA
 * model to `publish` (jobs/publish.ts publishResult: a new registry version, activated per the job's policy).
 *
 * The registry is reached through the two functions the wiring passes in, so training does not depend on it.
 *
 * @example
 * ```ts
 * const trainer = new WgslTrainer({
 *   readModel: (job) => registry.read(job.model, job.baseVersion ?? registry.model(job.model).active!),
 *   publish: (job, bytes, evals) => publishResult(registry, job, bytes, evals),
 * });
 * const jobs = await JobService.open({ dataDir, trainer });
 * ```
 * @module
 */
import { getGpu, type Gpu } from "../gpu/device.ts";
import type { EvalMetrics } from "../jobs/publish.ts";
import type { Job, Trainer, TrainerContext, TrainerResult } from "../jobs/types.ts";
import { OnnxModel } from "../onnx/model.ts";
import { runFinetune } from "./finetune_run.ts";
import type { ValMetrics } from "./metrics.ts";

export interface TrainerDeps {
  /** The ONNX bytes the job starts from (its base version). */
  readModel(job: Readonly<Job>): Promise<Uint8Array>;
  /** Stores the EMA model as the job's result and activates it per `job.config.activate`. */
  publish(
    job: Readonly<Job>,
    emaBytes: Uint8Array,
    evals: { base: EvalMetrics | null; result: EvalMetrics | null },
  ): Promise<TrainerResult>;
  /** The device to train on (default: the process-wide one). */
  gpu?: () => Promise<Gpu>;
  /** Progress notes (default: none). */
  log?(message: string): void;
}

export class WgslTrainer implements Trainer {
  constructor(private readonly deps: TrainerDeps) {}

  async run(job: Readonly<Job>, ctx: TrainerContext): Promise<TrainerResult> {
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
  return m && { map50: m.map50, map50_95: m.map };
}
