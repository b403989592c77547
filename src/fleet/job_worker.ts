/**
 * A node with jobs on: takes fleet jobs from the work queue one at a time (the queue's single durable consumer
 * gives each job to exactly one node) and runs them through this node's trainer. It says it is alive with
 * `working()` every third of the ack wait; a node that dies stops saying so and the queue hands the job to
 * another, which resumes from the last checkpoint in the object store. Progress, checkpoints and the outcome go
 * to the job's shared state; the trainer publishes the result into this node's registry, which the fleet
 * replicates to every node.
 *
 * A node that stops drains first: the running job's trainer is suspended (it checkpoints the iteration in flight,
 * fleet_checkpoints.ts uploads it and names it in the shared state), and only then is the job handed back to the
 * queue, so the node taking it over resumes at that iteration. A stop that cannot wait hands it back at once.
 * A hand-back replaces the job's work item (work_item.ts), so it does not count against the deliveries after
 * which the fleet gives up on a job whose runs keep dying; the delivery past them marks the job failed.
 * @module
 */
import { join } from "node:path";
import type { JsMsg } from "@nats-io/jetstream";
import type { Trainer, TrainerProgress } from "../jobs/types.ts";
import { unpackDataset } from "./dataset_pack.ts";
import { FleetCheckpoints } from "./fleet_checkpoints.ts";
import { datasetObject, type FleetJob, readJobState, updateJobState } from "./job_state.ts";
import { type FleetLink, WORK_ACK_WAIT_MS } from "./link.ts";
import { SharedJob } from "./shared_job.ts";
import { watchGiveUps } from "./work_give_up.ts";
import { giveUp, judgeDelivery, publishWork, readWorkItem, type WorkItem } from "./work_item.ts";

/** How long one pull waits for a work item before asking again (so a stop is noticed). */
const PULL_EXPIRES_MS = 2_000;
/** Progress reaches the shared state at most this often; status changes and checkpoints at once. */
const PROGRESS_EVERY_MS = 1_000;
/**
 * Longest wait, when handing a job back, for this node's writes to its shared state to land (one KV put each,
 * unless NATS is down: then the job's work item is nak'd, see handBack).
 */
const HANDBACK_WRITES_MS = 5_000;

export interface WorkerOptions {
  node: string;
  trainer: Trainer;
  /** Where job datasets are unpacked and trainers write (under the data dir). */
  workRoot: string;
  log: (message: string) => void;
  /** Whether the NATS connection is up now. */
  connected: () => boolean;
}

/**
 * How the worker stops: `drain` takes no more jobs and suspends the running one (it is handed back once its
 * checkpoint is in the fleet); `stop` hands the running one back at once (with the checkpoint it had).
 */
export interface WorkerStop {
  drain: AbortSignal;
  stop: AbortSignal;
}

/** Take and run jobs until `drain` or `stop` aborts. */
export async function runJobWorker(
  link: FleetLink,
  options: WorkerOptions,
  signals: WorkerStop,
): Promise<void> {
  const consumer = await link.js.consumers.get(link.work.stream, link.work.consumer);
  await sweep(link, options);
  const listening = new AbortController();
  const giveUps = watchGiveUps(link, options.log, listening.signal);
  try {
    while (!signals.stop.aborted && !signals.drain.aborted) {
      const msg = await consumer.next({ expires: PULL_EXPIRES_MS });
      if (msg) await takeOne(link, msg, options, signals);
    }
  } finally {
    listening.abort();
    await giveUps;
  }
}

/**
 * Judges a delivered work item against its job's shared state (work_item.ts): the node whose item it is to run
 * takes the job by compare-and-set on the state it judged (judged again when the state moved meanwhile) and
 * runs it; any other item is acked, or terminated with the job marked failed once its deliveries ran out.
 */
async function takeOne(
  link: FleetLink,
  msg: JsMsg,
  options: WorkerOptions,
  signals: WorkerStop,
): Promise<void> {
  const item = readWorkItem(msg);
  if (item === null) {
    msg.term("not a work item");
    return options.log(`fleet: dropped a work item that is not one: ${msg.string().slice(0, 200)}`);
  }
  const { id } = item;
  for (;;) {
    const read = await readJobState(link, id);
    const verdict = judgeDelivery(read?.state ?? null, item, { seq: msg.seq, count: msg.info.deliveryCount });
    if (verdict.kind === "ended" || read === null) {
      msg.ack(); // nothing left to do (finished, or cancelled while queued)
      // A checkpoint kept here is of no use now.
      return await Deno.remove(join(options.workRoot, id), { recursive: true }).catch(() => {});
    }
    const { state, revision } = read;
    switch (verdict.kind) {
      case "superseded":
        if (verdict.republish) await publishWork(link, verdict.republish);
        msg.ack();
        return options.log(`fleet: job ${id}: dropped a work item that a hand-back replaced`);
      case "duplicate":
        msg.ack();
        return options.log(
          `fleet: job ${id}: dropped a second work item (work item ${verdict.runningItem} runs it)`,
        );
      case "exhausted":
        if (!await giveUp(link, read, verdict.error)) continue;
        msg.term(verdict.error);
        return options.log(`fleet: job ${id} failed: ${verdict.error}`);
      case "run": {
        const taken: FleetJob = {
          ...state,
          status: "running",
          node: options.node,
          attempts: state.attempts + 1,
          handBacks: item.handBacks,
          workItem: msg.seq,
          heartbeat: new Date().toISOString(),
        };
        const takenAt = await updateJobState(link, taken, revision);
        if (takenAt === null) continue;
        return await runOne(link, msg, item, { state: taken, revision: takenAt }, options, signals);
      }
    }
  }
}

/** Runs a job this node took (`taken`: the state it wrote taking it, at that revision). */
async function runOne(
  link: FleetLink,
  msg: JsMsg,
  item: WorkItem,
  taken: { state: FleetJob; revision: number },
  options: WorkerOptions,
  signals: WorkerStop,
): Promise<void> {
  const { stop, drain } = signals;
  const { id } = item;
  const { job, attempts } = taken.state;
  const shared = new SharedJob(link, id, taken);
  const dir = join(options.workRoot, id);
  const controller = new AbortController();
  const onStop = () => controller.abort(new DOMException("Node shutting down", "AbortError"));
  stop.addEventListener("abort", onStop, { once: true });
  /**
   * Who runs the job now when it is no longer this run (this node was taken for dead, silent past the ack wait,
   * but went on): another node, or the queue after that node handed it back; null while it is this run.
   */
  const takenOver = (now: FleetJob | null) =>
    now !== null && now.status !== "cancelled" && (now.node !== options.node || now.attempts !== attempts)
      ? (now.node ?? "the queue")
      : null;
  let takenOverBy: string | null = null;
  const heartbeat = setInterval(async () => {
    msg.working();
    const now = await shared.read().catch(() => null);
    takenOverBy ??= takenOver(now);
    if (now?.status === "cancelled") {
      controller.abort(new DOMException(`Job ${id} was cancelled`, "AbortError"));
    } else if (takenOverBy !== null) {
      controller.abort(new DOMException(`Job ${id} was taken over by ${takenOverBy}`, "AbortError"));
    } else await shared.write({ heartbeat: new Date().toISOString() }).catch(() => {});
  }, WORK_ACK_WAIT_MS / 3);
  const datasetDir = join(dir, "dataset");
  const workDir = join(dir, "work");
  const checkpoints = new FleetCheckpoints({
    link,
    id,
    shared,
    localDir: join(dir, "checkpoint"),
    draining: drain,
    connected: options.connected,
    log: options.log,
  });
  let ended = false;
  try {
    // Taken as the drain began: handed back at once, for another node to run.
    AbortSignal.any([drain, stop]).throwIfAborted();
    options.log(`fleet: job ${id} (attempt ${attempts}, delivery ${msg.info.deliveryCount}) runs here`);
    for (const d of [datasetDir, workDir]) await Deno.remove(d, { recursive: true }).catch(() => {});
    await Deno.mkdir(workDir, { recursive: true });
    const zip = await link.jobData.getBlob(datasetObject(id));
    if (!zip) throw new Error(`the fleet has no dataset for job ${id}`);
    await unpackDataset(zip, datasetDir);
    let lastProgress = 0;
    const result = await options.trainer.run({ ...job, status: "running", attempts, node: options.node }, {
      signal: controller.signal,
      suspend: drain,
      datasetDir,
      workDir,
      checkpoint: checkpoints,
      onProgress: (update: TrainerProgress) => {
        shared.progress(update);
        if (Date.now() - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = Date.now();
        void shared.write({}).catch(() => {});
      },
    });
    await shared.write({ status: "succeeded", result });
    msg.ack();
    ended = true;
    options.log(`fleet: job ${id} succeeded here (version ${result.resultVersion})`);
  } catch (err) {
    // A write refused because the job moved on (this run's result, say) is no reason to end its work item.
    takenOverBy ??= takenOver(await shared.read().catch(() => null));
    if (takenOverBy !== null) {
      // Its work item is the other run's now: neither acked nor handed back from here.
      options.log(`fleet: job ${id} stopped here: taken over by ${takenOverBy} while this node went quiet`);
    } else if (stop.aborted || (drain.aborted && !controller.signal.aborted)) {
      // This node stops: the job goes back to the queue for another node to take at once, once the pointer to
      // the checkpoint it resumes from is final (a drain's checkpoint is saved by now, or failed).
      clearInterval(heartbeat);
      checkpoints.handBack();
      await handBack(link, msg, item, shared, options);
      options.log(`fleet: job ${id} handed back to the fleet (${(err as Error).message})`);
    } else if (controller.signal.aborted) {
      msg.term("cancelled");
      ended = true;
    } else {
      await shared.write({ status: "failed", error: (err as Error).message }).catch(() => {});
      msg.term((err as Error).message);
      ended = true;
      options.log(`fleet: job ${id} failed here: ${(err as Error).message}`);
    }
  } finally {
    clearInterval(heartbeat);
    stop.removeEventListener("abort", onStop);
    // A checkpoint kept on this node (fleet_checkpoints.ts) stays while the job may come back here.
    for (const d of ended ? [dir] : [datasetDir, workDir]) {
      await Deno.remove(d, { recursive: true }).catch(() => {});
    }
  }
}

/**
 * What earlier runs left under the work root (a crash, or a drain whose checkpoint stayed here): datasets and
 * outputs go; a kept checkpoint stays while its job may still come back here (queued or running in the fleet).
 */
async function sweep(link: FleetLink, options: WorkerOptions): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(options.workRoot));
  } catch {
    return; // nothing left yet
  }
  for (const entry of entries.filter((e) => e.isDirectory)) {
    const dir = join(options.workRoot, entry.name);
    const state = await new SharedJob(link, entry.name).read();
    if (state?.status === "queued" || state?.status === "running") {
      for (const d of ["dataset", "work"]) {
        await Deno.remove(join(dir, d), { recursive: true }).catch(() => {});
      }
    } else {
      await Deno.remove(dir, { recursive: true }).catch((err) =>
        options.log(`fleet: cannot remove '${dir}', left by an earlier run: ${err.message}`)
      );
    }
  }
}

/**
 * Hands the job back without using up a delivery (work_item.ts): this node's last state write (queued, one more
 * hand-back) lands, then the item that replaces the one held is published, then the held one is acked. When the
 * write or the publish does not go through (NATS down), the held item is nak'd instead: it comes back counting a
 * delivery, as after a crash (or superseded, when the write landed after all).
 */
async function handBack(
  link: FleetLink,
  msg: JsMsg,
  item: WorkItem,
  shared: SharedJob,
  options: WorkerOptions,
): Promise<void> {
  const next: WorkItem = { id: item.id, handBacks: item.handBacks + 1 };
  const written = shared.close({
    status: "queued",
    node: null,
    handBacks: next.handBacks,
    workItem: null,
    heartbeat: null,
  });
  try {
    if (!options.connected()) throw new Error("NATS is not connected");
    await within(written, HANDBACK_WRITES_MS);
    await publishWork(link, next);
    msg.ack();
  } catch (err) {
    written.catch(() => {}); // it may still land or fail: either is covered above
    msg.nak();
    options.log(`fleet: job ${item.id}: handed back as a delivery (${(err as Error).message})`);
  }
}

/** `work`, or a rejection after `ms`. */
async function within(work: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise((_, reject) =>
    timer = setTimeout(() => reject(new Error(`no answer in ${ms} ms`)), ms)
  );
  try {
    await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
