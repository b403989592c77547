/**
 * The backstop for a job whose work item ran out of deliveries without the delivery that marks it failed being
 * handled (job_worker.ts does that with the delivery past WORK_MAX_DELIVER; a node that dies holding it leaves
 * the item in the queue, never delivered again, and the job `running` for good). JetStream then publishes a
 * MAX_DELIVERIES advisory; each node with jobs on that hears it judges the item as that delivery would have been
 * judged (the job fails, or the item was superseded or a duplicate) and deletes the item from the queue.
 * @module
 */
import { type FleetLink, WORK_MAX_DELIVER } from "./link.ts";
import { readJobState } from "./job_state.ts";
import { giveUp, judgeDelivery, publishWork, readWorkItem } from "./work_item.ts";

/** Handles the work consumer's MAX_DELIVERIES advisories until `signal` aborts. */
export async function watchGiveUps(
  link: FleetLink,
  log: (message: string) => void,
  signal: AbortSignal,
): Promise<void> {
  const { stream, consumer } = link.work;
  const sub = link.nc.subscribe(`$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`);
  const stop = () => sub.unsubscribe();
  signal.addEventListener("abort", stop, { once: true });
  try {
    for await (const advisory of sub) {
      const seq = advisory.json<{ stream_seq: number }>().stream_seq;
      await settleExhausted(link, seq, log).catch((err) =>
        log(`fleet: work item ${seq} ran out of deliveries; not settled here: ${(err as Error).message}`)
      );
    }
  } finally {
    signal.removeEventListener("abort", stop);
  }
}

async function settleExhausted(link: FleetLink, seq: number, log: (message: string) => void): Promise<void> {
  const jsm = await link.js.jetstreamManager();
  const stored = await jsm.streams.getMessage(link.work.stream, { seq }).catch(() => null);
  if (!stored) return; // another node settled it
  const item = readWorkItem(stored);
  for (;;) {
    const read = item && await readJobState(link, item.id);
    if (!item || !read) break;
    const verdict = judgeDelivery(read.state, item, { seq, count: WORK_MAX_DELIVER + 1 });
    if (verdict.kind === "exhausted") {
      if (!await giveUp(link, read, verdict.error)) continue;
      log(`fleet: job ${item.id} failed: ${verdict.error}`);
    }
    if (verdict.kind === "superseded" && verdict.republish) await publishWork(link, verdict.republish);
    break;
  }
  await jsm.streams.deleteMessage(link.work.stream, seq).catch(() => {}); // gone already: settled elsewhere
}
