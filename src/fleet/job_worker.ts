/**
 * A node with jobs on: takes fleet jobs from the work queue one at a time (the queue's single durable consumer
 * gives each job to exactly one node) and runs them through this node's trainer. It says it is alive with
 * `working()` every third of the ack wait; a node that dies stops saying so and the queue hands the job to
 * another, which resumes from the last checkpoint in the object store. Progress, checkpoints and the outcome go
 * to the job's shared state; the trainer publishes the result into this node's registry, which the fleet
 * replicates to every node.
 * @module
 */
import { join } from "node:path";
import type { JsMsg } from "@nats-io/jetstream";
import type { Checkpoint, CheckpointHooks, Job, Trainer, TrainerProgress } from "../jobs/types.ts";
import { unpackDataset } from "./dataset_pack.ts";
import { checkpointObject, datasetObject, type FleetJob, FleetJobSchema } from "./job_state.ts";
import { type FleetLink, WORK_ACK_WAIT_MS } from "./link.ts";

/** How long one pull waits for a work item before asking again (so a stop is noticed). */
const PULL_EXPIRES_MS = 2_000;
/** Progress reaches the shared state at most this often; status changes and checkpoints at once. */
const PROGRESS_EVERY_MS = 1_000;

export interface WorkerOptions {
  node: string;
  trainer: Trainer;
  /** Where job datasets are unpacked and trainers write (under the data dir). */
  workRoot: string;
  log: (message: string) => void;
}

/** Take and run jobs until `stop` aborts. */
export async function runJobWorker(
  link: FleetLink,
  options: WorkerOptions,
  stop: AbortSignal,
): Promise<void> {
  const consumer = await link.js.consumers.get(link.work.stream, link.work.consumer);
  while (!stop.aborted) {
    const msg = await consumer.next({ expires: PULL_EXPIRES_MS });
    if (!msg) continue;
    await runOne(link, msg, options, stop);
  }
}

async function runOne(link: FleetLink, msg: JsMsg, options: WorkerOptions, stop: AbortSignal): Promise<void> {
  const { id } = msg.json<{ id: string }>();
  const shared = new SharedJob(link, id);
  const state = await shared.read();
  if (!state || state.status === "succeeded" || state.status === "failed" || state.status === "cancelled") {
    msg.ack(); // nothing left to do (finished, or cancelled while queued)
    return;
  }
  const controller = new AbortController();
  const onStop = () => controller.abort(new DOMException("Node shutting down", "AbortError"));
  stop.addEventListener("abort", onStop, { once: true });
  const heartbeat = setInterval(async () => {
    msg.working();
    const now = await shared.read().catch(() => null);
    if (now?.status === "cancelled") {
      controller.abort(new DOMException(`Job ${id} was cancelled`, "AbortError"));
    } else await shared.write({ heartbeat: new Date().toISOString() }).catch(() => {});
  }, WORK_ACK_WAIT_MS / 3);
  const dir = join(options.workRoot, id);
  try {
    await shared.write({
      status: "running",
      node: options.node,
      attempts: msg.info.deliveryCount,
      heartbeat: new Date().toISOString(),
    });
    options.log(`fleet: job ${id} (attempt ${msg.info.deliveryCount}) runs here`);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    const datasetDir = join(dir, "dataset");
    const workDir = join(dir, "work");
    await Deno.mkdir(workDir, { recursive: true });
    const zip = await link.jobData.getBlob(datasetObject(id));
    if (!zip) throw new Error(`the fleet has no dataset for job ${id}`);
    await unpackDataset(zip, datasetDir);
    const job: Job = {
      ...state.job,
      status: "running",
      attempts: msg.info.deliveryCount,
      node: options.node,
    };
    let lastProgress = 0;
    const result = await options.trainer.run(job, {
      signal: controller.signal,
      datasetDir,
      workDir,
      checkpoint: new ObjectStoreCheckpoints(link, id, shared),
      onProgress: (update: TrainerProgress) => {
        shared.progress(update);
        if (Date.now() - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = Date.now();
        void shared.write({}).catch(() => {});
      },
    });
    await shared.write({ status: "succeeded", result });
    msg.ack();
    options.log(`fleet: job ${id} succeeded here (version ${result.resultVersion})`);
  } catch (err) {
    if (stop.aborted) {
      // This node stops: let the queue hand the job to another node at once.
      msg.nak();
    } else if (controller.signal.aborted) {
      msg.term("cancelled");
    } else {
      await shared.write({ status: "failed", error: (err as Error).message }).catch(() => {});
      msg.term((err as Error).message);
      options.log(`fleet: job ${id} failed here: ${(err as Error).message}`);
    }
  } finally {
    clearInterval(heartbeat);
    stop.removeEventListener("abort", onStop);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The job's shared state as this runner writes it: each write puts the newest record, in order. */
class SharedJob {
  private state: FleetJob | null = null;
  private writes: Promise<unknown> = Promise.resolve();

  constructor(private readonly link: FleetLink, private readonly id: string) {}

  async read(): Promise<FleetJob | null> {
    const entry = await this.link.jobs.get(this.id);
    if (!entry || entry.operation !== "PUT") return null;
    const state = FleetJobSchema.parse(entry.json());
    // A cancel from the submitter is the only write another node makes while this one runs it.
    if (this.state && state.status === "cancelled") this.state.status = "cancelled";
    this.state ??= state;
    return state;
  }

  progress(update: TrainerProgress): void {
    if (!this.state) return;
    const defined = Object.fromEntries(Object.entries(update).filter(([, v]) => v !== undefined));
    this.state = { ...this.state, progress: { ...this.state.progress, ...defined } };
  }

  write(change: Partial<FleetJob>): Promise<unknown> {
    if (!this.state) return Promise.reject(new Error(`job ${this.id} has no shared state`));
    this.state = { ...this.state, ...change };
    const record = JSON.stringify(this.state);
    this.writes = this.writes.catch(() => {}).then(() => this.link.jobs.put(this.id, record));
    return this.writes;
  }
}

/** Checkpoints in the fleet's object store, so the node that takes a job over resumes where this one stopped. */
class ObjectStoreCheckpoints implements CheckpointHooks {
  constructor(
    private readonly link: FleetLink,
    private readonly id: string,
    private readonly shared: SharedJob,
  ) {}

  async load(): Promise<Checkpoint | null> {
    const state = await this.shared.read();
    if (!state?.checkpoint) return null;
    const { epoch, iteration } = state.checkpoint;
    const bytes = await this.link.jobData.getBlob(checkpointObject(this.id, state.checkpoint));
    if (!bytes) {
      throw new Error(`job ${this.id}: the checkpoint of epoch ${epoch}, iteration ${iteration} is missing`);
    }
    return { epoch, iteration, state: bytes };
  }

  async save(checkpoint: Checkpoint): Promise<void> {
    const previous = (await this.shared.read())?.checkpoint;
    const name = checkpointObject(this.id, checkpoint);
    await this.link.jobData.putBlob({ name }, checkpoint.state);
    const { epoch, iteration } = checkpoint;
    await this.shared.write({ checkpoint: { epoch, iteration, savedAt: new Date().toISOString() } });
    if (previous && checkpointObject(this.id, previous) !== name) {
      await this.link.jobData.delete(checkpointObject(this.id, previous)).catch(() => {});
    }
  }
}
