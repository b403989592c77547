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
import { isCasConflict } from "./fleet_store.ts";
import type { FleetLink } from "./link.ts";
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
  /** Runs started so far (1 on the first node, 2 after a takeover or a hand-back, ...). */
  attempts: z.number().int().min(0),
  /**
   * Hand-backs so far (work_item.ts): each one replaced the job's work item with a new one carrying this count,
   * so a work item carrying less is a leftover. Absent in a record written before hand-backs counted: 0.
   */
  handBacks: z.number().int().min(0).default(0),
  /**
   * The stream sequence of the work item the current run was started from; null while queued (and in a record
   * written before it was kept). Only a redelivery of that item may take the job over from a running node.
   */
  workItem: z.number().int().positive().nullable().default(null),
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

/** The job's state and the revision of its entry; null when the fleet has no such job. */
export async function readJobState(
  link: FleetLink,
  id: string,
): Promise<{ state: FleetJob; revision: number } | null> {
  const entry = await link.jobs.get(id);
  return entry?.operation === "PUT"
    ? { state: FleetJobSchema.parse(entry.json()), revision: entry.revision }
    : null;
}

/** Writes `state` if the job's entry is still at `revision`: its new revision, or null when it moved meanwhile. */
export async function updateJobState(
  link: FleetLink,
  state: FleetJob,
  revision: number,
): Promise<number | null> {
  try {
    return await link.jobs.update(state.job.id, JSON.stringify(state), revision);
  } catch (err) {
    if (isCasConflict(err)) return null;
    throw err;
  }
}

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
