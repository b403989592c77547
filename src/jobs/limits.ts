/**
 * What the job service admits: how many dataset uploads are unpacked at once (each holds memory and disk
 * while it is read and validated), how many jobs may wait in the queue, and how much free space the data
 * dir's filesystem must keep. A request past a limit is refused before its body is read, instead of a queue
 * or a disk that fills until the server falls over.
 * @module
 */
import { statfs } from "node:fs/promises";

export interface JobLimits {
  /** uploads being received, unpacked and validated at the same time */
  maxConcurrentUploads: number;
  /** jobs waiting to run (running ones not counted), uploads being accepted included */
  maxQueuedJobs: number;
  /** free bytes the data dir's filesystem must have for a new job to be accepted */
  minFreeBytes: number;
}

export const DEFAULT_JOB_LIMITS: JobLimits = {
  maxConcurrentUploads: 2,
  maxQueuedJobs: 16,
  // Room for one dataset at the default --max-dataset-bytes, so an accepted upload does not fill the disk.
  minFreeBytes: 1024 * 1024 * 1024,
};

/** Seconds a client should wait before retrying when all upload slots are taken (an upload takes seconds). */
export const UPLOAD_RETRY_AFTER_SECONDS = 5;
/** Seconds a client should wait before retrying when the queue is full (a job takes minutes). */
export const QUEUE_RETRY_AFTER_SECONDS = 60;

/** Bytes an unprivileged process may still write on the filesystem holding `path`. */
export async function freeBytes(path: string): Promise<number> {
  const fs = await statfs(path);
  return fs.bavail * fs.bsize;
}
