/**
 * The submitting node's side of a fleet job: the job service runs it through this {@link Trainer}, which hands
 * it to the fleet instead of training here — the dataset goes to the object store, the state to the jobs KV,
 * the work item to the work queue (deduplicated by job id) — and then follows the shared state, reporting the
 * running node's progress as the job's own, until it ends. The job service and its routes stay as they are:
 * to them a fleet job is a job whose trainer runs elsewhere. A restart of this node follows the job again
 * instead of handing it out twice.
 * @module
 */
import type {
  Job,
  JobProgress,
  Trainer,
  TrainerContext,
  TrainerProgress,
  TrainerResult,
} from "../jobs/types.ts";
import { packDataset } from "./dataset_pack.ts";
import { datasetObject, type FleetJob, FleetJobSchema } from "./job_state.ts";
import type { FleetLink } from "./link.ts";
import { publishWork } from "./work_item.ts";

export class FleetDispatchTrainer implements Trainer {
  /**
   * `link` resolves once the node is connected; `shuttingDown` tells a server shutdown (the job stays the
   * fleet's, followed again at the next start) from a cancel on this node (the fleet job is cancelled too).
   */
  constructor(private readonly link: () => Promise<FleetLink>, private readonly shuttingDown: AbortSignal) {}

  async run(job: Readonly<Job>, ctx: TrainerContext): Promise<TrainerResult> {
    // Until the node first reaches NATS the job waits here; a shutdown or cancel meanwhile ends the wait.
    const link = await Promise.race([this.link(), rejectOnAbort(ctx.signal)]);
    const watch = await link.jobs.watch({ key: job.id });
    const stop = () => watch.stop();
    ctx.signal.addEventListener("abort", stop, { once: true });
    try {
      if (!await link.jobs.get(job.id)) await handOut(link, job, ctx.datasetDir);
      for await (const entry of watch) {
        if (entry.operation !== "PUT") continue;
        const state = FleetJobSchema.parse(entry.json());
        if (ctx.signal.aborted) break;
        ctx.onProgress(asReport(state.progress));
        if (state.status === "succeeded" && state.result) return state.result;
        if (state.status === "failed") throw new Error(`on node ${state.node}: ${state.error}`);
        if (state.status === "cancelled") throw new Error("cancelled in the fleet");
      }
      ctx.signal.throwIfAborted();
      throw new Error("the fleet's job state stopped updating");
    } catch (err) {
      if (ctx.signal.aborted && !this.shuttingDown.aborted) await cancel(link, job.id);
      throw ctx.signal.aborted ? ctx.signal.reason : err;
    } finally {
      ctx.signal.removeEventListener("abort", stop);
      watch.stop();
    }
  }
}

function rejectOnAbort(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** The dataset first, so the node taking the work item finds it; then the state; then the work item. */
async function handOut(link: FleetLink, job: Readonly<Job>, datasetDir: string): Promise<void> {
  await link.jobData.putBlob({ name: datasetObject(job.id) }, await packDataset(datasetDir));
  const state: FleetJob = {
    job: { ...job },
    status: "queued",
    node: null,
    attempts: 0,
    handBacks: 0,
    workItem: null,
    progress: job.progress,
    checkpoint: null,
    result: null,
    error: null,
    heartbeat: null,
  };
  await link.jobs.create(job.id, JSON.stringify(state));
  await publishWork(link, { id: job.id, handBacks: 0 });
}

/** A cancel on this node: mark the shared state so the running node stops at its next heartbeat. */
async function cancel(link: FleetLink, id: string): Promise<void> {
  const entry = await link.jobs.get(id);
  if (!entry || entry.operation !== "PUT") return;
  const state = FleetJobSchema.parse(entry.json());
  if (state.status === "queued" || state.status === "running") {
    await link.jobs.update(id, JSON.stringify({ ...state, status: "cancelled" }), entry.revision)
      .catch(() => {}); // it moved on meanwhile (ended, or the runner recorded something): its outcome stands
  }
}

/**
 * The shared job state's progress as the running node's trainer reported it: what it has not reported yet
 * (null), and the job record's own derived fields (ETA, metrics), left out.
 */
function asReport(progress: JobProgress): TrainerProgress {
  const { epoch, epochs, iteration, iterations, lossItems, lr, imagesPerSecond } = progress;
  const known = (xs: (number | null)[] | null) => xs !== null && xs.every((x) => x !== null);
  return {
    epoch,
    epochs,
    iteration,
    iterations,
    ...(known(lossItems) ? { lossItems: lossItems as [number, number, number] } : {}),
    ...(known(lr) ? { lr: lr as [number, number, number] } : {}),
    ...(imagesPerSecond !== null ? { imagesPerSecond } : {}),
  };
}
