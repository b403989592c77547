/**
 * The server's Trainer: each job trains in its own Web Worker (whose entry module, training_worker_entry.ts, runs
 * the WGSL trainer), so the serving event loop never waits for a training step. On lavapipe a step's GPU work blocks the calling
 * thread for its whole length (seconds at batch 8), which on the main thread would stall every detect request
 * that long. The registry and the job's checkpoint store stay on the main thread; the worker reaches them by
 * request/reply messages. A worker per job means its GPU device, buffers and pipelines go when the job ends.
 *
 * @example
 * ```ts
 * const trainer = new WorkerTrainer({ readModel, publish: (job, bytes, evals) => publishResult(registry, job, bytes, evals) });
 * const jobs = await JobService.open({ dataDir, trainer });
 * ```
 * @module
 */
import type { Checkpoint, Job, Trainer, TrainerContext, TrainerResult } from "../jobs/types.ts";
import type { Evaluations, TrainingProgress } from "../train/trainer.ts";
import { spawnWorker } from "../workers/spawn.ts";

export interface WorkerTrainerDeps {
  /** The ONNX bytes the job starts from. */
  readModel(job: Readonly<Job>): Promise<Uint8Array>;
  /** Store the EMA model as the job's result (a registry version, activated per the job's policy). */
  publish(
    job: Readonly<Job>,
    bytes: Uint8Array,
    evals: Evaluations,
  ): Promise<TrainerResult>;
  log?(message: string): void;
  /** While element 0 is 1, the worker waits between training steps (serve_budget.ts). */
  pause?: Int32Array;
}

/** What the worker asks of the main thread; each call gets one `reply` with its id. */
export type WorkerCall =
  | { method: "readModel" }
  | { method: "publish"; bytes: Uint8Array; evals: Evaluations }
  | { method: "checkpointLoad" }
  | { method: "checkpointSave"; checkpoint: Checkpoint };

/** Worker -> main thread. */
export type FromWorker =
  | { type: "call"; id: number; call: WorkerCall }
  | { type: "progress"; progress: TrainingProgress }
  | { type: "log"; message: string }
  | { type: "done"; result: TrainerResult }
  | { type: "failed"; message: string };

/** Main thread -> worker. */
export type ToWorker =
  | { type: "run"; job: Job; datasetDir: string; workDir: string; pause?: Int32Array }
  /** checkpoint after the iteration in flight, then stop (`failed` follows) */
  | { type: "suspend" }
  | { type: "reply"; id: number; ok: true; value: unknown }
  | { type: "reply"; id: number; ok: false; message: string };

const WORKER_URL = new URL("./training_worker_entry.ts", import.meta.url);

export class WorkerTrainer implements Trainer {
  readonly suspends = true;

  constructor(private readonly deps: WorkerTrainerDeps) {}

  run(job: Readonly<Job>, ctx: TrainerContext): Promise<TrainerResult> {
    ctx.signal.throwIfAborted();
    const worker = spawnWorker(WORKER_URL);
    const outcome = Promise.withResolvers<TrainerResult>();
    const send = (message: ToWorker) => worker.postMessage(message);
    let publishing = false;
    const answer = (call: WorkerCall): Promise<unknown> => {
      switch (call.method) {
        case "readModel":
          return this.deps.readModel(job);
        case "publish":
          publishing = true;
          return this.deps.publish(job, call.bytes, call.evals);
        case "checkpointLoad":
          return ctx.checkpoint.load();
        case "checkpointSave":
          return ctx.checkpoint.save(call.checkpoint);
      }
    };
    worker.onmessage = (e: MessageEvent<FromWorker>) => {
      const msg = e.data;
      try {
        if (msg.type === "call") {
          answer(msg.call).then(
            (value) => send({ type: "reply", id: msg.id, ok: true, value }),
            (err) => send({ type: "reply", id: msg.id, ok: false, message: (err as Error).message }),
          );
        } else if (msg.type === "progress") ctx.onProgress(msg.progress);
        else if (msg.type === "log") this.deps.log?.(msg.message);
        else if (msg.type === "done") outcome.resolve(msg.result);
        else if (ctx.signal.aborted) outcome.reject(ctx.signal.reason);
        else outcome.reject(ctx.suspend?.aborted ? ctx.suspend.reason : new Error(msg.message));
      } catch (err) {
        outcome.reject(err);
      }
    };
    worker.onerror = (e) => {
      e.preventDefault();
      outcome.reject(new Error(`Training worker crashed: ${e.message}`));
    };
    // Cancel and a shutdown out of time terminate the worker at once instead of waiting out its current step
    // (seconds on lavapipe); the job then resumes from its last checkpoint. Only a publish under way is let
    // finish, so a version that reached the registry is recorded in the job. A suspend (a drain) lets the
    // worker checkpoint the iteration in flight first; the worker then fails with the suspend's reason.
    const abort = () => {
      if (!publishing) outcome.reject(ctx.signal.reason);
    };
    const suspend = () => send({ type: "suspend" });
    ctx.signal.addEventListener("abort", abort, { once: true });
    ctx.suspend?.addEventListener("abort", suspend, { once: true });
    send({
      type: "run",
      job: structuredClone(job),
      datasetDir: ctx.datasetDir,
      workDir: ctx.workDir,
      pause: this.deps.pause,
    });
    if (ctx.suspend?.aborted) suspend();
    return outcome.promise.finally(() => {
      ctx.signal.removeEventListener("abort", abort);
      ctx.suspend?.removeEventListener("abort", suspend);
      worker.terminate();
    });
  }
}
