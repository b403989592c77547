/**
 * One attempt at running a job through its {@link Trainer}: wires the trainer's progress reports (merged into
 * the record, with an ETA from this attempt's iteration rate) and checkpoint saves (recorded in the job) back
 * to the service, and turns the trainer's outcome into a value instead of an exception.
 * @module
 */
import {
  type Checkpoint,
  type CheckpointHooks,
  type Job,
  type JobProgress,
  JobProgressSchema,
  type Trainer,
  type TrainerProgress,
  type TrainerResult,
} from "./types.ts";

export interface AttemptEnv {
  signal: AbortSignal;
  /** the trainer's suspend signal (see TrainingContext.suspend) */
  suspend: AbortSignal;
  /** milliseconds clock */
  now: () => number;
  datasetDir: string;
  workDir: string;
  /** the job's checkpoint storage; `onSaved` runs after each durable save */
  checkpoints: (onSaved: (saved: Omit<Checkpoint, "state">) => Promise<void>) => CheckpointHooks;
  /** the job's current record */
  current: () => Job;
  /** record a change: `durable` ones are persisted before this resolves, progress ones may be batched */
  update: (job: Job, durable: boolean) => Promise<Job>;
}

export type AttemptOutcome = { ok: true; result: TrainerResult } | { ok: false; error: string };

/** Seconds left at this attempt's rate, or null before the rate or the total is known. */
export function etaSeconds(
  progress: JobProgress,
  startIteration: number,
  elapsedSeconds: number,
): number | null {
  const done = progress.iteration - startIteration;
  if (done <= 0 || elapsedSeconds <= 0 || progress.iterations <= 0) return null;
  return Math.max(progress.iterations - progress.iteration, 0) * elapsedSeconds / done;
}

const finite = (v: number | null) => (v !== null && Number.isFinite(v) ? v : null);

/**
 * The record's progress with a trainer report applied. NaN/Infinity (a diverging loss) become null, which is
 * what JSON would make of them anyway; anything else off-schema is a trainer bug and throws a TypeError.
 */
function merge(progress: JobProgress, update: TrainerProgress): JobProgress {
  const cleaned: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(update)) if (value !== undefined) cleaned[key] = value;
  if (update.lossItems) cleaned.lossItems = update.lossItems.map(finite);
  if (update.lr) cleaned.lr = update.lr.map(finite);
  if (update.imagesPerSecond !== undefined) cleaned.imagesPerSecond = finite(update.imagesPerSecond);
  const checked = JobProgressSchema.partial().safeParse(cleaned);
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ");
    throw new TypeError(`Invalid trainer progress report: ${issues}`);
  }
  return { ...progress, ...checked.data };
}

export async function runAttempt(trainer: Trainer, job: Job, env: AttemptEnv): Promise<AttemptOutcome> {
  const startTime = env.now();
  const startIteration = job.progress.iteration;
  const onProgress = (update: TrainerProgress) => {
    const current = env.current();
    if (env.signal.aborted || current.status !== "running") return;
    const progress = merge(current.progress, update);
    progress.etaSeconds = etaSeconds(progress, startIteration, (env.now() - startTime) / 1000);
    void env.update({ ...current, progress }, false);
  };
  const checkpoint = env.checkpoints(async ({ epoch, iteration }) => {
    const savedAt = new Date(env.now()).toISOString();
    await env.update({ ...env.current(), checkpoint: { epoch, iteration, savedAt } }, true);
  });
  try {
    const result = await trainer.run(job, {
      signal: env.signal,
      suspend: env.suspend,
      onProgress,
      checkpoint,
      datasetDir: env.datasetDir,
      workDir: env.workDir,
    });
    return { ok: true, result };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}
