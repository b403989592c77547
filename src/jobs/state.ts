/**
 * The job state machine. A job is queued, runs, and ends succeeded, failed or cancelled; a running job lost to
 * a restart goes back to queued to resume from its checkpoint, and a queued one whose upload is gone fails.
 * Terminal states are final, so a record on disk never moves backwards.
 * @module
 */
import { JobRequestError } from "./errors.ts";
import { type Job, type JobStatus, TERMINAL_STATUSES } from "./types.ts";

const TRANSITIONS: Record<JobStatus, readonly JobStatus[]> = {
  queued: ["running", "cancelled", "failed"],
  running: ["succeeded", "failed", "cancelled", "queued"],
  succeeded: [],
  failed: [],
  cancelled: [],
};

export function canTransition(from: JobStatus, to: JobStatus): boolean {
  return TRANSITIONS[from].includes(to);
}

/**
 * The job after moving to `to` at time `at`: startedAt is set on the first start, finishedAt on reaching a
 * terminal state, attempts counts starts. Throws a `conflict` {@link JobRequestError} for a move the machine
 * does not allow (cancelling a finished job, finishing a queued one).
 */
export function transition(job: Job, to: JobStatus, at: string, patch: Partial<Job> = {}): Job {
  if (!canTransition(job.status, to)) {
    throw new JobRequestError("conflict", `Job ${job.id} is ${job.status}; it cannot become ${to}`);
  }
  return {
    ...job,
    ...patch,
    status: to,
    startedAt: to === "running" ? job.startedAt ?? at : job.startedAt,
    attempts: to === "running" ? job.attempts + 1 : job.attempts,
    finishedAt: TERMINAL_STATUSES.has(to) ? at : null,
  };
}

/** What a new job's record starts as: queued, never started, no progress, result or error yet. */
export function queuedJob(
  init: Pick<Job, "id" | "seq" | "model" | "baseVersion" | "adapter" | "config" | "createdAt" | "dataset">,
): Job {
  // The fields in the order a record has always been written in (job.json, the API's answers).
  const { id, seq, model, baseVersion, adapter, config, createdAt, dataset } = init;
  return {
    id,
    seq,
    model,
    baseVersion,
    adapter,
    config,
    status: "queued",
    createdAt,
    startedAt: null,
    finishedAt: null,
    dataset,
    progress: {
      epoch: 0,
      epochs: config.epochs,
      iteration: 0,
      iterations: 0,
      lossItems: null,
      lr: null,
      imagesPerSecond: null,
      etaSeconds: null,
      metrics: null,
    },
    resultVersion: null,
    activated: null,
    error: null,
    attempts: 0,
    // A fleet node hands every job to the fleet, whose shared state says where it runs (fleet/job_state.ts).
    node: null,
    checkpoint: null,
  };
}
