/**
 * The backstop of src/fleet/work_give_up.ts: a work item whose last delivery (the one that would mark its job
 * failed) is held by a node that dies ends the job `failed` all the same, from JetStream's MAX_DELIVERIES
 * advisory, and leaves the queue.
 */
import assert from "node:assert/strict";
import { FleetJobSchema } from "../../src/fleet/job_state.ts";
import { WORK_ACK_WAIT_MS, WORK_MAX_DELIVER } from "../../src/fleet/link.ts";
import { NO_NATS } from "../../src/fleet/local_nats.ts";
import { watchGiveUps } from "../../src/fleet/work_give_up.ts";
import { publishWork } from "../../src/fleet/work_item.ts";
import { fleetJobState, withFleet } from "./_fleet_job.ts";
import { until } from "./_node_child.ts";

/** One pull for work while the test waits (the job worker's is 2 s). */
const PULL_MS = 1_000;

Deno.test({
  name:
    "work give-up: an item whose every delivery was lost, the last one included, fails its job and leaves the queue",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link) => {
      const log: string[] = [];
      const listening = new AbortController();
      const watching = watchGiveUps(link, (line) => log.push(line), listening.signal);
      try {
        const id = "poison";
        await publishWork(link, { id, handBacks: 0 });
        const consumer = await link.js.consumers.get(link.work.stream, link.work.consumer);
        // Every delivery the consumer makes (a nak stands for a node that died: redelivered at once); the state
        // says the item's run holds the job, as the node taking the first delivery wrote.
        let seq = 0;
        for (let delivery = 1; delivery <= WORK_MAX_DELIVER + 1; delivery++) {
          const msg = await consumer.next({ expires: 5_000 });
          assert.equal(msg?.info.deliveryCount, delivery);
          if (delivery === 1) {
            seq = msg.seq;
            await link.jobs.put(id, JSON.stringify({ ...fleetJobState(id), workItem: seq }));
          }
          if (delivery <= WORK_MAX_DELIVER) msg.nak();
        }
        // The last delivery is neither acked nor terminated: after the ack wait JetStream gives up on the item,
        // when a node next asks for work (as nodes with jobs on always do).
        const failed = await until(`job ${id} to fail (ack wait ${WORK_ACK_WAIT_MS} ms)`, async () => {
          assert.equal(await consumer.next({ expires: PULL_MS }), null, "never delivered again");
          const state = FleetJobSchema.parse((await link.jobs.get(id))!.json());
          return state.status === "failed" ? state : null;
        });
        assert.match(failed.error ?? "", new RegExp(`gave up after ${WORK_MAX_DELIVER} deliveries`));
        const jsm = await link.js.jetstreamManager();
        await until(
          "the item to leave the queue",
          async () => (await jsm.streams.info(link.work.stream)).state.messages === 0 || null,
        );
        assert.equal(log.filter((l) => l.includes(`job ${id} failed`)).length, 1);
      } finally {
        listening.abort();
        await watching;
      }
    });
  },
});
