/**
 * Jobs on disk, under `<dataDir>/jobs/<id>/`: `job.json` (the record, replaced atomically), `dataset/` (the
 * upload, YOLO layout), `checkpoint/` and `work/` (the trainer's). A submission is staged in
 * `.staging-<id>/` and published by one directory rename once the dataset and record are durable, so after a
 * crash a job either exists completely or was never acknowledged to the user.
 * @module
 */
import { dirname, join } from "node:path";
import { syncDir, writeJsonAtomic, writeSynced } from "../registry/atomic.ts";
import { type Job, JobSchema } from "./types.ts";

/** One file of an uploaded dataset, `path` relative to the dataset root (e.g. `images/a.jpg`). */
export interface DatasetFile {
  path: string;
  data: Uint8Array;
}

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

  /** Durably store a new job and its dataset; the job exists only once this resolves. */
  async create(job: Job, files: readonly DatasetFile[]): Promise<void> {
    files.forEach((f) => checkDatasetPath(f.path));
    await Deno.mkdir(this.root, { recursive: true });
    const staging = join(this.root, `${STAGING_PREFIX}${job.id}`);
    try {
      const dataset = join(staging, "dataset");
      const dirs = new Set(files.map((f) => dirname(join(dataset, f.path))));
      dirs.add(dataset);
      for (const dir of dirs) await Deno.mkdir(dir, { recursive: true });
      for (const f of files) await writeSynced(join(dataset, f.path), f.data);
      for (const dir of dirs) await syncDir(dir);
      await writeJsonAtomic(join(staging, RECORD), job);
      await Deno.rename(staging, this.jobDir(job.id));
      await syncDir(this.root);
    } catch (err) {
      await Deno.remove(staging, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** Replace a job's record atomically. */
  async save(job: Job): Promise<void> {
    await writeJsonAtomic(join(this.jobDir(job.id), RECORD), job);
  }

  /**
   * Every stored job (in no particular order), the directories that could not be read, and the number of
   * staged submissions a crash interrupted before they were acknowledged (those are removed).
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
      }
    }
    return { jobs, unreadable, discardedStaging };
  }
}
