/**
 * The fine-tune job record (what `GET /v1/jobs/{id}` shows and `job.json` stores) and the {@link Trainer}
 * contract the queue drives. The record is plain JSON so it persists and travels over HTTP/SSE unchanged; its zod
 * schema validates records read back from disk and can describe API responses.
 * @module
 */
import { z } from "zod";
import { FinetuneConfigSchema } from "../config/finetune.ts";
import type { Checkpoint, CheckpointStore } from "../train/finetune_run.ts";
import type { PublishedResult, TrainingContext, TrainingProgress } from "../train/trainer.ts";

export const JobStatusSchema = z.enum(["queued", "running", "succeeded", "failed", "cancelled"]);
export type JobStatus = z.infer<typeof JobStatusSchema>;

/** Statuses a job never leaves. */
export const TERMINAL_STATUSES: ReadonlySet<JobStatus> = new Set(["succeeded", "failed", "cancelled"]);

// null where a value was NaN or infinite (a diverging loss): JSON cannot carry those.
const finiteOrNull = z.number().nullable();
const triple = z.tuple([finiteOrNull, finiteOrNull, finiteOrNull]);

/**
 * Where training stands: the trainer's {@link TrainingProgress} as the record keeps it, plus the ETA and the
 * evaluation results. Counts are of completed work; everything unknown is null.
 */
export const JobProgressSchema = z.object({
  /** epoch being trained (0-based, as train.py counts) */
  epoch: z.number().int().min(0),
  epochs: z.number().int().positive(),
  /** iterations (batches) completed over the whole job */
  iteration: z.number().int().min(0),
  /** iterations the whole job takes (batches per epoch x epochs); 0 until the trainer has read the dataset */
  iterations: z.number().int().min(0),
  /** box, objectness and class loss as train.py logs them (after gains, before x batch size) */
  lossItems: triple.nullable(),
  /** learning rate per parameter group (biases, weights, norm weights) */
  lr: triple.nullable(),
  imagesPerSecond: z.number().nullable(),
  /** seconds left, extrapolated from this attempt's iteration rate */
  etaSeconds: z.number().nullable(),
  /** evaluation results so far, e.g. `map50`, `map50_95`, `base_map50_95` */
  metrics: z.record(z.string(), z.number()).nullable(),
});
export type JobProgress = z.infer<typeof JobProgressSchema>;

export const JobFailureSchema = z.object({
  /** `trainer` (the trainer threw), `interrupted` (lost to a restart and not resumable), `dataset` */
  code: z.string(),
  message: z.string(),
});
export type JobFailure = z.infer<typeof JobFailureSchema>;

/** Where a durable checkpoint stands. Records written before mid-epoch checkpoints existed read iteration 0. */
export const CheckpointRecordSchema = z.object({
  /** epochs completed */
  epoch: z.number().int().min(0),
  /** batches of epoch `epoch` trained (0 for an epoch-end checkpoint; more for one taken when the server stopped) */
  iteration: z.number().int().min(0).default(0),
  savedAt: z.string(),
});
export type CheckpointRecord = z.infer<typeof CheckpointRecordSchema>;

/** One fine-tune job. Times are ISO 8601 strings. */
export const JobSchema = z.object({
  id: z.string(),
  /** FIFO position among all jobs ever submitted to this data dir */
  seq: z.number().int().min(0),
  /** registry model name the job fine-tunes */
  model: z.string(),
  /** registry version the job starts from, when known */
  baseVersion: z.number().int().positive().nullable(),
  /** the GPU adapter (device) the job trains on; one running job per adapter */
  adapter: z.string(),
  config: FinetuneConfigSchema,
  status: JobStatusSchema,
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  /** uploaded dataset, stored beside the record */
  dataset: z.object({ files: z.number().int().min(0), bytes: z.number().int().min(0) }),
  progress: JobProgressSchema,
  /** registry version holding the result (the EMA weights), once published */
  resultVersion: z.number().int().positive().nullable(),
  /** whether the result became the active version (per `config.activate`) */
  activated: z.boolean().nullable(),
  error: JobFailureSchema.nullable(),
  /** times training started; more than 1 after resuming from a restart (in a fleet: deliveries to nodes) */
  attempts: z.number().int().min(0),
  /**
   * In a fleet (`--nats`): the node it runs or ran on, null until a node took it; always null on a box that runs
   * alone. Records written before the field existed read as null.
   */
  node: z.string().nullable().default(null),
  /** the last durable checkpoint: where training resumes from it */
  checkpoint: CheckpointRecordSchema.nullable(),
});
export type Job = z.infer<typeof JobSchema>;

// The Trainer contract is training's own run types (train/trainer.ts, one layer down), named for the queue.
export type { Checkpoint };
/** Durable checkpoint storage of one job. */
export type CheckpointHooks = CheckpointStore;
/** What a trainer reports; fields left out keep their previous value. */
export type TrainerProgress = Partial<TrainingProgress>;
/** What the queue gives one run; a trainer may report progress partially. */
export interface TrainerContext extends Omit<TrainingContext, "onProgress"> {
  onProgress(progress: TrainerProgress): void;
}
/** The published result: the registry version holding the EMA model, whether it serves, and its metrics. */
export type TrainerResult = PublishedResult;

/** Runs one fine-tune (training loop, evaluation, publishing the result) for the queue. */
export interface Trainer {
  /**
   * Whether run() honours `context.suspend` (checkpoints the iteration in flight, then stops). A drain
   * (JobService.close with `checkpoint`) suspends such a trainer and stops any other at once.
   */
  readonly suspends?: boolean;
  run(job: Readonly<Job>, context: TrainerContext): Promise<TrainerResult>;
}
