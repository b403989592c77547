/**
 * Joins fine-tune jobs to the server: the WGSL trainer (in a worker) reads a job's base version from the registry and
 * publishes its EMA model back into it (which hot-swaps serving when the result is activated), and the job
 * service lives in the server's data directory, so interrupted jobs resume (or fail with the reason) at start.
 */
import type { JobLimits } from "../jobs/limits.ts";
import { publishResult, skipPublished } from "../jobs/publish.ts";
import { JobService } from "../jobs/service.ts";
import type { Trainer } from "../jobs/types.ts";
import type { Registry } from "../registry/registry.ts";
import { WorkerTrainer, type WorkerTrainerDeps } from "./worker_trainer.ts";

/**
 * The real trainer, off the serving thread, on the registry the server serves from; `publish` stores its result
 * (default: publishResult; the server passes the forgetting guard's), `pause` is the serve budget's flag.
 */
export function registryTrainer(
  registry: Registry,
  log: (message: string) => void,
  publish: WorkerTrainerDeps["publish"] = (job, bytes, evals) => publishResult(registry, job, bytes, evals),
  pause?: Int32Array,
): Trainer {
  return new WorkerTrainer({
    readModel: async (job) => {
      const version = job.baseVersion ?? registry.model(job.model).active;
      if (version === null) throw new Error(`Model '${job.model}' has no active version to fine-tune`);
      return await registry.read(job.model, version);
    },
    publish,
    log,
    pause,
  });
}

export interface OpenJobsOptions {
  dataDir: string;
  trainer: Trainer;
  /** the registry the trainer publishes into */
  registry: Registry;
  /** resolves once serving loaded the persisted active versions */
  ready: Promise<void>;
  limits: JobLimits;
  log: (message: string) => void;
}

/**
 * Open the job service under `dataDir` with a trainer that starts no job before `ready` resolves (a job resumed at
 * startup must not publish, and swap serving, while the startup still loads the persisted active versions) and
 * that does not train again a job whose result is already in the registry (a crash came between the publish and
 * the job record's update).
 */
export function openJobs(options: OpenJobsOptions): Promise<JobService> {
  const { dataDir, ready, limits, log } = options;
  const trainer = skipPublished(options.registry, options.trainer);
  const gated: Trainer = {
    suspends: trainer.suspends,
    async run(job, ctx) {
      // A stop (or a suspend: nothing is trained yet) ends the wait.
      const stops = [ctx.signal, ...(ctx.suspend ? [ctx.suspend] : [])];
      const stopped = stops.map((signal) =>
        new Promise<void>((resolve) => signal.addEventListener("abort", () => resolve(), { once: true }))
      );
      for (const signal of stops) signal.throwIfAborted();
      await Promise.race([ready, ...stopped]);
      for (const signal of stops) signal.throwIfAborted();
      return await trainer.run(job, ctx);
    },
  };
  return JobService.open({ dataDir, trainer: gated, log, limits });
}
