/**
 * The items of the fleet's work queue (`{id, handBacks}`, one per job run to be started) and what a node does
 * with one it is given ({@link judgeDelivery}).
 *
 * The queue counts the deliveries of an item to give up on a job whose runs keep dying (a poison job): the
 * delivery past {@link WORK_MAX_DELIVER} is not run but ends the job `failed` (work_give_up.ts covers a node
 * that dies holding that one). A node that stops (SIGTERM) must not use up that budget, so it
 * hands its job back by replacing the item, not by a nak (which JetStream counts as a delivery): it writes the
 * shared state (status `queued`, `handBacks` + 1), publishes a new item carrying that count (message id
 * `<id>/handback-<n>`, so publishing it twice stores it once within the stream's duplicate window), and only
 * then acks the item it held. A node that dies between these steps leaves:
 * - the state written, no new item: the old item comes back after the ack wait, superseded (it carries fewer
 *   hand-backs than the state), and the node given it publishes the new item before acking it;
 * - the new item published, the old one not acked: the old one comes back and is acked as superseded;
 * - nothing written: the old item comes back as after any crash (the run counts against the budget).
 *
 * So a job may have two items at once; the shared state decides which one runs: the node that takes the job
 * writes, by compare-and-set, the stream sequence of its item (`workItem`), and while the job runs any other
 * item of it is dropped (acked). Only a redelivery of the running item (its node went quiet) takes it over.
 * @module
 */
import type { JsMsg } from "@nats-io/jetstream";
import { z } from "zod";
import { TERMINAL_STATUSES } from "../jobs/types.ts";
import { type FleetJob, updateJobState } from "./job_state.ts";
import { type FleetLink, WORK_MAX_DELIVER } from "./link.ts";

const WorkItemSchema = z.object({
  id: z.string(),
  /** The job's hand-backs when this item was published (absent in an item published before they counted). */
  handBacks: z.number().int().min(0).default(0),
});
export type WorkItem = z.infer<typeof WorkItemSchema>;

/** The item a message (delivered, or read from the stream) carries; null for a message that is not one. */
export function readWorkItem(msg: Pick<JsMsg, "json">): WorkItem | null {
  try {
    return WorkItemSchema.parse(msg.json());
  } catch {
    return null;
  }
}

/** Puts `item` on the queue; a second publish of the same item (same job, same hand-back count) is a no-op. */
export async function publishWork(link: FleetLink, item: WorkItem): Promise<void> {
  const msgID = item.handBacks === 0 ? item.id : `${item.id}/handback-${item.handBacks}`;
  await link.js.publish(link.work.subject, JSON.stringify(item), { msgID });
}

/** What a node does with a delivered item, given the job's shared state. */
export type Verdict =
  /** Take the job (compare-and-set on the state just read) and run it. */
  | { kind: "run" }
  /** The job is gone or ended: ack the item. */
  | { kind: "ended" }
  /** A hand-back replaced the item: publish the new one when the job still waits for it, then ack. */
  | { kind: "superseded"; republish: WorkItem | null }
  /** Another item of the job runs it: ack this one. */
  | { kind: "duplicate"; runningItem: number }
  /** The item's runs used up the budget: the job fails, the item is terminated. */
  | { kind: "exhausted"; error: string };

/** `delivery`: the item's stream sequence and how often the queue has delivered it (this time included). */
export function judgeDelivery(
  state: FleetJob | null,
  item: WorkItem,
  delivery: { seq: number; count: number },
): Verdict {
  if (state === null || TERMINAL_STATUSES.has(state.status)) return { kind: "ended" };
  if (item.handBacks < state.handBacks) {
    const waiting = state.status === "queued";
    return { kind: "superseded", republish: waiting ? { id: item.id, handBacks: state.handBacks } : null };
  }
  if (state.status === "running" && state.workItem !== null && state.workItem !== delivery.seq) {
    return { kind: "duplicate", runningItem: state.workItem };
  }
  if (delivery.count > WORK_MAX_DELIVER) {
    return {
      kind: "exhausted",
      error:
        `gave up after ${WORK_MAX_DELIVER} deliveries: each node running it stopped without handing it ` +
        `back (crashed, killed, or cut off from NATS)`,
    };
  }
  return { kind: "run" };
}

/** Marks the job failed with `error` if its state is still at `read.revision`; false when it moved meanwhile. */
export async function giveUp(
  link: FleetLink,
  read: { state: FleetJob; revision: number },
  error: string,
): Promise<boolean> {
  return await updateJobState(link, { ...read.state, status: "failed", error }, read.revision) !== null;
}
