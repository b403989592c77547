/**
 * What a restart does with the jobs it finds on disk. A job that was running when the process died goes back
 * to the queue and resumes from its last checkpoint (from scratch if it had none); when that is impossible —
 * its upload is gone, the checkpoint is damaged, or it has already been interrupted too often — it is marked
 * failed with the reason. Queued jobs stay queued. No job is dropped without a record saying why.
 * @module
 */
import { FsCheckpoints } from "./checkpoint.ts";
import { transition } from "./state.ts";
import type { JobStore } from "./store.ts";
import type { Job } from "./types.ts";

/** A job started this many times and interrupted every time is likely what kills the process: stop retrying. */
export const DEFAULT_MAX_ATTEMPTS = 3;

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Where an interrupted job resumes (its checkpoint's position, the start without one), or why it cannot. The
 * stored checkpoint, not the record, says where: a stop can land between the checkpoint's save and the record's.
 */
async function resumePoint(
  store: JobStore,
  job: Job,
  maxAttempts: number,
): Promise<{ epoch: number; iteration: number } | { blocker: string }> {
  if (job.attempts >= maxAttempts) return { blocker: `it was interrupted ${job.attempts} times` };
  try {
    const checkpoint = await new FsCheckpoints(store.checkpointDir(job.id)).load();
    return { epoch: checkpoint?.epoch ?? 0, iteration: checkpoint?.iteration ?? 0 };
  } catch (err) {
    return { blocker: `its checkpoint cannot be read (${(err as Error).message})` };
  }
}

/** The state a stored job continues in after a restart at time `at` (unchanged when nothing needs doing). */
export async function recoverJob(
  store: JobStore,
  job: Job,
  at: string,
  maxAttempts = DEFAULT_MAX_ATTEMPTS,
): Promise<Job> {
  if (job.status !== "running" && job.status !== "queued") return job;
  if (!await isDirectory(store.datasetDir(job.id))) {
    return transition(job, "failed", at, {
      error: { code: "dataset", message: `The uploaded dataset '${store.datasetDir(job.id)}' is missing` },
    });
  }
  if (job.status === "queued") return job;
  const where = job.checkpoint
    ? `after the checkpoint of epoch ${job.checkpoint.epoch}, iteration ${job.checkpoint.iteration}`
    : "before any checkpoint";
  const point = await resumePoint(store, job, maxAttempts);
  if ("blocker" in point) {
    return transition(job, "failed", at, {
      error: {
        code: "interrupted",
        message: `Interrupted by a restart ${where}; not resumed because ${point.blocker}`,
      },
    });
  }
  // Progress goes back to where the checkpoint is, which is where the trainer will continue.
  const { epoch } = point;
  const iteration = Math.floor((job.progress.iterations / job.progress.epochs) * epoch) + point.iteration;
  const progress = { ...job.progress, epoch, iteration, imagesPerSecond: null, etaSeconds: null };
  return transition(job, "queued", at, { progress });
}
