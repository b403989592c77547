/**
 * The entry module of {@link WorkerTrainer}'s Web Worker: runs one job through the WGSL trainer on this thread's
 * own GPU device. The base model, publishing and checkpoints are requests to the main thread (see worker_trainer.ts).
 * Cancellation terminates the worker, so the trainer's own signal never fires; a `suspend` message suspends the
 * run (it checkpoints the iteration in flight, then fails).
 * @module
 */
import type { Checkpoint, TrainerResult } from "../jobs/types.ts";
import { WgslTrainer } from "../train/trainer.ts";
import type { FromWorker, ToWorker, WorkerCall } from "./worker_trainer.ts";

/** The worker side of the message channel (the project's lib is deno.window, so `self` is typed as a window). */
const port = self as unknown as {
  postMessage(message: FromWorker): void;
  onmessage: ((e: MessageEvent<ToWorker>) => void) | null;
};

const pending = new Map<number, PromiseWithResolvers<unknown>>();
let nextId = 0;
const suspension = new AbortController();

function call<T>(request: WorkerCall): Promise<T> {
  const id = nextId++;
  const reply = Promise.withResolvers<unknown>();
  pending.set(id, reply);
  port.postMessage({ type: "call", id, call: request });
  return reply.promise as Promise<T>;
}

/** Longest single wait: the flag is re-read at least this often, whatever wakes (or fails to wake) it. */
const PAUSE_POLL_MS = 500;
/**
 * Longest pause before one more step: detect can be slow for reasons training does not cause (other load on
 * the machine), and a job must not starve forever; it then crawls at a step per this many ms.
 */
const MAX_PAUSE_MS = 10_000;

/**
 * Blocks this worker between training steps while the serve budget says detect is slow (serve_budget.ts), at
 * most MAX_PAUSE_MS. The step's GPU work is done when progress is reported, so nothing is held but the next
 * step. Cancelling terminates the worker, which ends a wait too.
 */
function waitWhilePaused(flag: Int32Array): void {
  const deadline = performance.now() + MAX_PAUSE_MS;
  while (Atomics.load(flag, 0) === 1 && performance.now() < deadline) {
    Atomics.wait(flag, 0, 1, Math.min(PAUSE_POLL_MS, deadline - performance.now()));
  }
}

async function run(msg: Extract<ToWorker, { type: "run" }>): Promise<void> {
  const trainer = new WgslTrainer({
    readModel: () => call<Uint8Array>({ method: "readModel" }),
    publish: (_job, bytes, evals) => call<TrainerResult>({ method: "publish", bytes, evals }),
    log: (message) => port.postMessage({ type: "log", message }),
  });
  try {
    const result = await trainer.run(msg.job, {
      signal: new AbortController().signal,
      suspend: suspension.signal,
      onProgress: (progress) => {
        port.postMessage({ type: "progress", progress });
        if (msg.pause) waitWhilePaused(msg.pause);
      },
      checkpoint: {
        load: () => call<Checkpoint | null>({ method: "checkpointLoad" }),
        save: (checkpoint) => call<void>({ method: "checkpointSave", checkpoint }),
      },
      datasetDir: msg.datasetDir,
      workDir: msg.workDir,
    });
    port.postMessage({ type: "done", result });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    // The main thread reports a suspended run as suspended; a checkpoint that failed would go unsaid.
    if (suspension.signal.aborted && err !== suspension.signal.reason) {
      port.postMessage({
        type: "log",
        message: `job ${msg.job.id}: suspended without a checkpoint: ${message}`,
      });
    }
    port.postMessage({ type: "failed", message });
  }
}

port.onmessage = (e) => {
  const msg = e.data;
  if (msg.type === "run") void run(msg);
  else if (msg.type === "suspend") suspension.abort(new DOMException("Training suspended", "AbortError"));
  else {
    const reply = pending.get(msg.id);
    pending.delete(msg.id);
    if (msg.ok) reply?.resolve(msg.value);
    else reply?.reject(new Error(msg.message));
  }
};
