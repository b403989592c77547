/**
 * Jobs on disk, under `<dataDir>/jobs/<id>/`: `job.json` (the record, replaced atomically), `dataset/` (the
 * upload, YOLO layout), `checkpoint/` and `work/` (the trainer's). Once a job has ended only `job.json` stays
 * (see {@link JobStore.removeFiles}). A submission is staged in
 * `.staging-<id>/` and published by one directory rename once the dataset and record are durable, so after a
 * crash a job either exists completely or was never acknowledged to the user.
 * @module
 */
import { dirname, join } from "node:path";
import { syncDir, writeJsonAtomic } from "../registry/atomic.ts";
import { type Job, JobSchema } from "./types.ts";

/** One file of an uploaded dataset, `path` relative to the dataset root (e.g. `images/a.jpg`). */
export interface DatasetFile {
  path: string;
  data: Uint8Array;
}

/**
 * Writes a dataset into the (empty, existing) directory it is given, e.g. by unpacking an uploaded archive;
 * throws to reject the upload.
 */
export type DatasetWriter = (dir: string) => Promise<void>;

/** A job directory that could not be read back; left on disk untouched for a person to look at. */
export interface UnreadableJob {
  dir: string;
  reason: string;
}

const STAGING_PREFIX = ".staging-";
const RECORD = "job.json";

/**
 * Check that an uploaded path stays inside the dataset: relative, `/`-separated, no `.`/`..`/empty segments.
 * Returns it unchanged; throws a TypeError naming it otherwise.
 */
export function checkDatasetPath(path: string): string {
  const parts = path.split("/");
  const bad = path.length === 0 || path.includes("\\") || path.includes("\0") ||
    parts.some((p) => p === "" || p === "." || p === "..");
  if (bad) {
    throw new TypeError(`Dataset file path '${path}' must be relative, '/'-separated, without '.' or '..'`);
  }
  return path;
}

export class JobStore {
  /** `root` is `<dataDir>/jobs`. */
  constructor(readonly root: string) {}

  jobDir(id: string): string {
    return join(this.root, id);
  }

  datasetDir(id: string): string {
    return join(this.root, id, "dataset");
  }

  checkpointDir(id: string): string {
    return join(this.root, id, "checkpoint");
  }

  workDir(id: string): string {
    return join(this.root, id, "work");
  }

  /**
   * Durably store a new job and its dataset (files, or a writer that fills the directory); the job exists only
   * once this resolves. Returns the record as stored, with the dataset's file count and size. Throws a TypeError
   * for an empty dataset or a file path that would leave the dataset directory, and whatever the writer throws.
   */
  async create(job: Job, dataset: readonly DatasetFile[] | DatasetWriter): Promise<Job> {
    if (typeof dataset !== "function") dataset.forEach((f) => checkDatasetPath(f.path));
    await Deno.mkdir(this.root, { recursive: true });
    const staging = join(this.root, `${STAGING_PREFIX}${job.id}`);
    try {
      const dir = join(staging, "dataset");
      await Deno.mkdir(dir, { recursive: true });
      if (typeof dataset === "function") await dataset(dir);
      else {
        for (const f of dataset) {
          await Deno.mkdir(dirname(join(dir, f.path)), { recursive: true });
          await Deno.writeFile(join(dir, f.path), f.data);
        }
      }
      const stats = await syncTree(dir);
      if (stats.files === 0) throw new TypeError("The dataset is empty");
      const stored = { ...job, dataset: stats };
      await writeJsonAtomic(join(staging, RECORD), stored);
      await Deno.rename(staging, this.jobDir(job.id));
      await syncDir(this.root);
      return stored;
    } catch (err) {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /**
   * A fresh directory in the data dir to receive an upload into before it becomes a job, named as staging so
   * that what a crash leaves there is removed at the next start. The caller removes it when done.
   */
  async stageUpload(): Promise<string> {
    const dir = join(this.root, `${STAGING_PREFIX}upload-${crypto.randomUUID()}`);
    await Deno.mkdir(dir, { recursive: true });
    return dir;
  }

  /**
   * Delete a job's dataset, checkpoint and work files, keeping its record: an ended job needs none of them
   * (its result is a registry version), and kept they would fill the disk job by job. Idempotent.
   */
  async removeFiles(id: string): Promise<void> {
    for (const dir of [this.datasetDir(id), this.checkpointDir(id), this.workDir(id)]) {
      await Deno.remove(dir, { recursive: true }).catch((err) => {
        if (!(err instanceof Deno.errors.NotFound)) throw err;
      });
    }
  }

  /** Replace a job's record atomically. */
  async save(job: Job): Promise<void> {
    await writeJsonAtomic(join(this.jobDir(job.id), RECORD), job);
  }

  /**
   * Every stored job (in no particular order), the directories that could not be read, and the number of
   * staged submissions a crash interrupted before they were acknowledged (those are removed, as are the temp
   * files of interrupted record writes).
   */
  async loadAll(): Promise<{ jobs: Job[]; unreadable: UnreadableJob[]; discardedStaging: number }> {
    const jobs: Job[] = [];
    const unreadable: UnreadableJob[] = [];
    let discardedStaging = 0;
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(this.root));
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return { jobs, unreadable, discardedStaging };
      throw err;
    }
    for (const entry of entries) {
      const dir = join(this.root, entry.name);
      if (!entry.isDirectory) continue;
      if (entry.name.startsWith(STAGING_PREFIX)) {
        await Deno.remove(dir, { recursive: true });
        discardedStaging++;
        continue;
      }
      try {
        const parsed = JobSchema.safeParse(JSON.parse(await Deno.readTextFile(join(dir, RECORD))));
        if (!parsed.success) {
          throw new Error(parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; "));
        }
        if (parsed.data.id !== entry.name) {
          throw new Error(`record id '${parsed.data.id}' does not match the directory`);
        }
        jobs.push(parsed.data);
      } catch (err) {
        unreadable.push({ dir, reason: `${join(dir, RECORD)}: ${(err as Error).message}` });
        continue;
      }
      await removeTempFiles(dir);
    }
    return { jobs, unreadable, discardedStaging };
  }
}

/** Drop the temp file of a record replacement a crash interrupted (the record itself is the old or new one). */
async function removeTempFiles(dir: string): Promise<void> {
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.startsWith(`${RECORD}.tmp-`)) await Deno.remove(join(dir, entry.name));
  }
}

/** fsync every file and directory under `dir` (whoever wrote them); returns the file count and total size. */
async function syncTree(dir: string): Promise<{ files: number; bytes: number }> {
  let files = 0, bytes = 0;
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      const sub = await syncTree(path);
      files += sub.files;
      bytes += sub.bytes;
    } else if (entry.isFile) {
      const file = await Deno.open(path, { read: true, write: true });
      try {
        await file.sync();
        bytes += (await file.stat()).size;
        files++;
      } finally {
        file.close();
      }
    }
  }
  await syncDir(dir);
  return { files, bytes };
}
