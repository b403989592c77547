/**
 * A fleet job's shared state, one KV entry per job in `<fleet>-jobs` (key: the job id): the submitted record,
 * where and how often it ran, its progress and last checkpoint, and its outcome. The node that submitted it
 * creates it; the node running it updates it; a cancel is written by the submitter and seen by the runner.
 * Datasets and checkpoints live in `<fleet>-jobdata` under `<id>/dataset.zip` and `<id>/checkpoint-<epoch>`
 * (`-<iteration>` added for one taken within an epoch: one object per position, the state's `checkpoint` naming
 * the durable one, so a crash between writing the object and the state leaves the previous pair whole).
 * @module
 */
import { z } from "zod";
import {
  CheckpointRecordSchema,
  type Job,
  JobProgressSchema,
  JobSchema,
  TERMINAL_STATUSES,
} from "../jobs/types.ts";

export const FleetJobSchema = z.object({
  /** The record as submitted (model, base version, config). */
  job: JobSchema,
  status: z.enum(["queued", "running", "succeeded", "failed", "cancelled"]),
  /** The node running it, or that ran it last; null while queued. */
  node: z.string().nullable(),
  /** Deliveries of its work item so far (1 on the first node, 2 after a takeover, ...). */
  attempts: z.number().int().min(0),
  progress: JobProgressSchema,
  /** Where the last checkpoint in the object store stands. */
  checkpoint: CheckpointRecordSchema.nullable(),
  result: z.object({
    resultVersion: z.number().int().positive().nullable(),
    activated: z.boolean().nullable(),
    metrics: z.record(z.string(), z.number()).nullable(),
  }).nullable(),
  error: z.string().nullable(),
  /** When the running node last said it is alive. */
  heartbeat: z.string().nullable(),
});
export type FleetJob = z.infer<typeof FleetJobSchema>;

export const datasetObject = (id: string) => `${id}/dataset.zip`;
export const checkpointObject = (id: string, at: { epoch: number; iteration: number }) =>
  `${id}/checkpoint-${at.epoch}${at.iteration ? `-${at.iteration}` : ""}`;

/**
 * The shared state as a job record (what `/v1/jobs` shows on every node): the submitted record with the fleet's
 * status, node, attempts, progress, checkpoint and outcome. `updatedAt` is the time of the state's last write,
 * which for a job that ended is when it ended.
 */
export function asJobRecord(state: FleetJob, updatedAt: Date): Job {
  const ended = TERMINAL_STATUSES.has(state.status);
  return {
    ...state.job,
    status: state.status,
    node: state.node,
    attempts: state.attempts,
    progress: { ...state.progress, metrics: state.result?.metrics ?? state.progress.metrics },
    checkpoint: state.checkpoint,
    resultVersion: state.result?.resultVersion ?? null,
    activated: state.result?.activated ?? null,
    error: state.error === null ? null : { code: "trainer", message: state.error },
    finishedAt: ended ? updatedAt.toISOString() : null,
  };
}
