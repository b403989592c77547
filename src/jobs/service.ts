/**
 * The fine-tune job service the API and CLI call: submit, list, get, cancel and follow jobs. Jobs run one at a
 * time per GPU adapter, the rest wait in submission order; each runs through a {@link Trainer}, reports
 * progress, checkpoints through the service, and every state change is persisted before it is announced.
 * Uploads and the queue are bounded (limits.ts), and a job that ended keeps only its record.
 *
 * @example
 * ```ts
 * const jobs = await JobService.open({ dataDir, trainer });
 * const job = await jobs.submit({ model: "yolov5n", config: { epochs: 3 }, dataset: files });
 * for await (const event of jobs.events(job.id)) console.log(event.job.status, event.job.progress.iteration);
 * ```
 * @module
 */
import { join } from "node:path";
import { type FinetuneConfigInput, parseFinetuneConfig } from "../config/finetune.ts";
import { MODEL_NAME } from "../registry/registry.ts";
import { JobAdmission, type UploadSlot } from "./admission.ts";
import { FsCheckpoints } from "./checkpoint.ts";
import { JobRequestError } from "./errors.ts";
import { type JobEvent, JobEventHub, type JobEventListener, streamEvents } from "./events.ts";
import { DEFAULT_JOB_LIMITS, type JobLimits } from "./limits.ts";
import { DEFAULT_MAX_ATTEMPTS, recoverJob } from "./recover.ts";
import { queuedJob, transition } from "./state.ts";
import { type DatasetFile, type DatasetWriter, JobStore } from "./store.ts";
import { runAttempt } from "./run.ts";
import { type Job, TERMINAL_STATUSES, type Trainer } from "./types.ts";

export interface JobServiceOptions {
  /** the server's data directory; jobs live in `<dataDir>/jobs` */
  dataDir: string;
  trainer: Trainer;
  /** clock (tests pin it) */
  now?: () => Date;
  /** write progress to disk at most this often; status changes and checkpoints are written at once */
  progressPersistMs?: number;
  /** starts after which an interrupted job is failed instead of resumed */
  maxAttempts?: number;
  /** where recovery notes go (unreadable job directories, discarded partial uploads) */
  log?: (message: string) => void;
  /** admission limits; each one left out takes its {@link DEFAULT_JOB_LIMITS} value */
  limits?: Partial<JobLimits>;
}

export interface SubmitRequest {
  model: string;
  baseVersion?: number | null;
  /** GPU adapter to train on (default "default"); one running job per adapter */
  adapter?: string;
  config: FinetuneConfigInput;
  /** the upload: its files, or a writer that unpacks it into the directory it is given */
  dataset: readonly DatasetFile[] | DatasetWriter;
}

const DEFAULT_PROGRESS_PERSIST_MS = 2000;
const SHUTDOWN = new DOMException("Server shutting down", "AbortError");

export class JobService {
  private readonly jobs = new Map<string, Job>();
  private readonly hub = new JobEventHub();
  private readonly running = new Map<
    string,
    { id: string; controller: AbortController; suspend: AbortController; done: Promise<void> }
  >();
  private readonly writes = new Map<string, Promise<void>>();
  private readonly lastPersist = new Map<string, number>();
  private nextSeq = 0;
  private readonly admission: JobAdmission;

  private constructor(private readonly options: JobServiceOptions, private readonly store: JobStore) {
    const limits: JobLimits = { ...DEFAULT_JOB_LIMITS, ...options.limits };
    const queued = () => this.list().filter((j) => j.status === "queued").length;
    this.admission = new JobAdmission(limits, store.root, queued);
  }

  /** Load the stored jobs, resume or fail the interrupted ones (see recover.ts), and start the queue. */
  static async open(options: JobServiceOptions): Promise<JobService> {
    const service = new JobService(options, new JobStore(join(options.dataDir, "jobs")));
    // Exists from the start: the free-space check reads its filesystem.
    await Deno.mkdir(service.store.root, { recursive: true });
    const { jobs, unreadable, discardedStaging } = await service.store.loadAll();
    for (const u of unreadable) {
      service.log(`jobs: left unreadable job directory '${u.dir}' untouched: ${u.reason}`);
    }
    if (discardedStaging) {
      service.log(`jobs: removed ${discardedStaging} upload(s) interrupted before they were accepted`);
    }
    for (const stored of jobs.sort((a, b) => a.seq - b.seq)) {
      const job = await recoverJob(
        service.store,
        stored,
        service.timestamp(),
        options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      );
      if (job !== stored) await service.store.save(job);
      // Also completes a cleanup that a crash cut short after the terminal record was written.
      if (TERMINAL_STATUSES.has(job.status)) await service.removeFiles(job.id);
      service.jobs.set(job.id, job);
      service.nextSeq = Math.max(service.nextSeq, job.seq + 1);
    }
    service.pump();
    return service;
  }

  /**
   * Take an upload slot before reading an upload's body, so at most `maxConcurrentUploads` uploads are held
   * and unpacked at once; the caller releases it once the upload was submitted or refused. Throws what
   * {@link submit} throws for a closing service, a full queue or a nearly full disk, and `busy` when every
   * slot is taken.
   */
  reserveUpload(): Promise<UploadSlot> {
    return this.admission.reserveUpload();
  }

  /**
   * Store the dataset and a queued job; resolves once both are durable. Throws an `invalid` JobRequestError
   * for a bad model name, config or dataset path or an empty dataset, `unavailable` once {@link close} began,
   * `busy` when `maxQueuedJobs` jobs already wait and `insufficient_storage` when the data dir's filesystem
   * has less than `minFreeBytes` free; errors of a dataset writer (such as a dataset validation error listing
   * the offending files) pass through unchanged.
   */
  async submit(request: SubmitRequest): Promise<Job> {
    if (!MODEL_NAME.test(request.model)) {
      throw new JobRequestError("invalid", `Model name '${request.model}' must match ${MODEL_NAME}`);
    }
    let config;
    try {
      config = parseFinetuneConfig(request.config, "request config");
    } catch (err) {
      throw new JobRequestError("invalid", (err as Error).message);
    }
    return await this.admission.admit(() => this.create(request, config));
  }

  private async create(request: SubmitRequest, config: Job["config"]): Promise<Job> {
    const job = queuedJob({
      id: crypto.randomUUID(),
      seq: this.nextSeq++,
      model: request.model,
      baseVersion: request.baseVersion ?? null,
      adapter: request.adapter ?? "default",
      config,
      createdAt: this.timestamp(),
      dataset: { files: 0, bytes: 0 }, // counted by the store once written
    });
    let stored: Job;
    try {
      stored = await this.store.create(job, request.dataset);
    } catch (err) {
      if (err instanceof TypeError) throw new JobRequestError("invalid", err.message);
      throw err;
    }
    this.jobs.set(stored.id, stored);
    this.hub.publish({ type: "status", job: stored });
    this.pump();
    return stored;
  }

  /** A fresh directory in the data dir for an upload being received (see JobStore.stageUpload); remove it after. */
  stageUpload(): Promise<string> {
    return this.store.stageUpload();
  }

  /** Every job, oldest first. */
  list(): Job[] {
    return [...this.jobs.values()].sort((a, b) => a.seq - b.seq);
  }

  get(id: string): Job {
    const job = this.jobs.get(id);
    if (!job) throw new JobRequestError("not_found", `No job '${id}'`);
    return job;
  }

  /**
   * Cancel a job: a queued one at once, a running one by aborting its trainer (it ends `cancelled` when the
   * trainer stops, between iterations). A cancel that comes while the trainer publishes its result loses: the
   * publish completes and the job ends `succeeded` with its version, so a version is never left behind by a
   * job that says it was cancelled. Throws `conflict` for a job that already finished.
   */
  async cancel(id: string): Promise<Job> {
    const job = this.get(id);
    const run = this.running.get(job.adapter);
    if (job.status === "running" && run?.id === id) {
      run.controller.abort(new DOMException(`Job ${id} was cancelled`, "AbortError"));
      return job;
    }
    return await this.commit(transition(job, "cancelled", this.timestamp()));
  }

  /** Events of one job (ending after its terminal status) or of all jobs, starting with the current state. */
  events(id?: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const initial = id === undefined ? this.list() : [this.get(id)];
    return streamEvents(this.hub, {
      jobId: id,
      initial: initial.map((job) => ({ type: "status", job })),
      signal,
    });
  }

  subscribe(listener: JobEventListener): () => void {
    return this.hub.subscribe(listener);
  }

  /** Resolves when no job is running or queued (CLI runs, tests). */
  async idle(): Promise<void> {
    while (this.running.size > 0) await Promise.all([...this.running.values()].map((r) => r.done));
    await Promise.allSettled(this.writes.values());
  }

  /**
   * Stop: running trainers stop without recording an outcome, so their records stay `running` and the next
   * {@link open} resumes them from their last checkpoint, as after a crash. With `checkpoint` (a server's
   * drain) a trainer that {@link Trainer.suspends} is suspended: it checkpoints the iteration in flight once
   * it is done and stops, so the next open resumes exactly there; bound the wait, and call close() without
   * `checkpoint` to stop it at once. Other trainers, and all without `checkpoint`, stop at once and resume from
   * the checkpoint they had.
   */
  async close(options: { checkpoint?: boolean } = {}): Promise<void> {
    this.admission.close();
    for (const run of this.running.values()) {
      if (options.checkpoint && this.options.trainer.suspends) run.suspend.abort(SHUTDOWN);
      else run.controller.abort(SHUTDOWN);
    }
    await this.idle();
  }

  private pump(): void {
    if (this.admission.closed) return;
    for (const job of this.list()) {
      if (job.status !== "queued" || this.running.has(job.adapter)) continue;
      const entry = {
        id: job.id,
        controller: new AbortController(),
        suspend: new AbortController(),
        done: Promise.resolve(),
      };
      this.running.set(job.adapter, entry);
      entry.done = this.run(job, entry).catch((err) => this.log(`jobs: job ${job.id}: ${err}`)).finally(
        () => {
          this.running.delete(job.adapter);
          this.pump();
        },
      );
    }
  }

  private async run(
    job: Job,
    { controller, suspend }: { controller: AbortController; suspend: AbortController },
  ): Promise<void> {
    const started = await this.commit(transition(job, "running", this.timestamp(), { error: null }));
    await Deno.mkdir(this.store.workDir(job.id), { recursive: true });
    const outcome = await runAttempt(this.options.trainer, started, {
      signal: controller.signal,
      suspend: suspend.signal,
      now: () => this.now().getTime(),
      datasetDir: this.store.datasetDir(job.id),
      workDir: this.store.workDir(job.id),
      checkpoints: (onSaved) => new FsCheckpoints(this.store.checkpointDir(job.id), onSaved),
      current: () => this.get(job.id),
      update: (next, durable) => durable ? this.commit(next, "progress") : this.progress(next),
    });
    const shutdown = controller.signal.reason === SHUTDOWN || suspend.signal.aborted;
    const cancelled = controller.signal.aborted && !shutdown;
    const at = this.timestamp();
    const current = this.get(job.id);
    if (!outcome.ok) {
      // A shutdown leaves the record `running`, exactly as a crash would, so the next open() resumes it.
      if (shutdown) return;
      const next = cancelled
        ? transition(current, "cancelled", at)
        : transition(current, "failed", at, { error: { code: "trainer", message: outcome.error } });
      await this.commit(next);
      return;
    }
    // The trainer finished despite a cancel only by completing its publish (see cancel()): the job succeeded.
    const { resultVersion, activated, metrics } = outcome.result;
    // A non-finite metric would not survive JSON and would make the record unreadable after a restart.
    const finite = metrics &&
      Object.fromEntries(Object.entries(metrics).filter(([, v]) => Number.isFinite(v)));
    const progress = { ...current.progress, metrics: finite ?? current.progress.metrics };
    await this.commit(transition(current, "succeeded", at, { resultVersion, activated, progress }));
  }

  /**
   * Record, persist (awaited) and announce a change. A job that ended loses its files once its record says so
   * (a crash in between is cleaned up by open()), before the end is announced.
   */
  private async commit(job: Job, type: JobEvent["type"] = "status"): Promise<Job> {
    this.jobs.set(job.id, job);
    await this.persist(job.id);
    if (TERMINAL_STATUSES.has(job.status)) await this.removeFiles(job.id);
    this.hub.publish({ type, job });
    return job;
  }

  /** The ended job's dataset, checkpoint and work files; a failure is logged, the record already says it all. */
  private async removeFiles(id: string): Promise<void> {
    await this.store.removeFiles(id).catch((err) =>
      this.log(`jobs: job ${id}: cannot delete its files: ${err}`)
    );
  }

  /** Record and announce progress at once; persist it at most every `progressPersistMs`. */
  private progress(job: Job): Promise<Job> {
    this.jobs.set(job.id, job);
    this.hub.publish({ type: "progress", job });
    const now = this.now().getTime();
    const every = this.options.progressPersistMs ?? DEFAULT_PROGRESS_PERSIST_MS;
    if (now - (this.lastPersist.get(job.id) ?? -Infinity) >= every) void this.persist(job.id).catch(() => {});
    return Promise.resolve(job);
  }

  /** Writes of one job run in order, each writing the newest record, so a stale one never lands last. */
  private persist(id: string): Promise<void> {
    this.lastPersist.set(id, this.now().getTime());
    const write = (this.writes.get(id) ?? Promise.resolve()).catch(() => {}).then(() =>
      this.store.save(this.get(id))
    );
    this.writes.set(id, write);
    return write;
  }

  private log(message: string): void {
    (this.options.log ?? console.warn)(message);
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  private timestamp(): string {
    return this.now().toISOString();
  }
}
