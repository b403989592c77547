/**
 * The fleet's work items (src/fleet/work_item.ts): which delivered item may run its job, and, with two job
 * workers on one nats-server, that a second item of a job (a hand-back interrupted between its steps, or any
 * duplicate) never runs it twice, while a job whose hand-back never published its new item still runs; and a
 * node that was taken for dead while it ran the job stops when it sees the takeover, writing nothing over it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import type { FleetJob } from "../../src/fleet/job_state.ts";
import { datasetObject, FleetJobSchema } from "../../src/fleet/job_state.ts";
import { runJobWorker } from "../../src/fleet/job_worker.ts";
import { type FleetLink, WORK_MAX_DELIVER } from "../../src/fleet/link.ts";
import { NO_NATS } from "../../src/fleet/local_nats.ts";
import { judgeDelivery, publishWork, type WorkItem } from "../../src/fleet/work_item.ts";
import type { Trainer, TrainerResult } from "../../src/jobs/types.ts";
import { fleetJobState, withFleet } from "./_fleet_job.ts";
import { until } from "./_node_child.ts";

const state = (change: Partial<FleetJob>): FleetJob => ({ ...fleetJobState("j"), ...change });
const item: WorkItem = { id: "j", handBacks: 0 };

Deno.test("work item: the verdict on each delivery, from the job's shared state", () => {
  const first = { seq: 7, count: 1 };
  assert.deepEqual(judgeDelivery(null, item, first), { kind: "ended" });
  for (const status of ["succeeded", "failed", "cancelled"] as const) {
    assert.deepEqual(judgeDelivery(state({ status }), item, first), { kind: "ended" });
  }
  assert.deepEqual(judgeDelivery(state({ status: "queued", workItem: null }), item, first), { kind: "run" });
  // A redelivery of the item the running node holds: that node went quiet, this one takes over.
  assert.deepEqual(
    judgeDelivery(state({ status: "running", workItem: 7 }), item, { seq: 7, count: 2 }),
    { kind: "run" },
  );
  // Another item of a running job: dropped, whatever its delivery count.
  assert.deepEqual(
    judgeDelivery(state({ status: "running", workItem: 3 }), item, { seq: 7, count: WORK_MAX_DELIVER + 1 }),
    { kind: "duplicate", runningItem: 3 },
  );
  // An item a hand-back replaced: its successor is published again only while the job waits for it.
  assert.deepEqual(
    judgeDelivery(
      state({ status: "queued", handBacks: 2, workItem: null }),
      { id: "j", handBacks: 1 },
      first,
    ),
    { kind: "superseded", republish: { id: "j", handBacks: 2 } },
  );
  assert.deepEqual(
    judgeDelivery(state({ status: "running", handBacks: 2, workItem: 9 }), { id: "j", handBacks: 1 }, first),
    { kind: "superseded", republish: null },
  );
  // The item's runs used up the budget: the delivery past it fails the job.
  const last = { seq: 7, count: WORK_MAX_DELIVER };
  assert.deepEqual(judgeDelivery(state({ status: "running", workItem: 7 }), item, last), { kind: "run" });
  const past = judgeDelivery(state({ status: "running", workItem: 7 }), item, {
    seq: 7,
    count: last.count + 1,
  });
  assert.equal(past.kind, "exhausted");
  assert.match((past as { error: string }).error, new RegExp(`gave up after ${WORK_MAX_DELIVER} deliveries`));
});

/** Bound on a stand-in run that the test holds (released long before in a passing run). */
const HOLD_MS = 30_000;

/** A trainer that records each run and finishes it when `release` resolves (or stops it when aborted). */
function heldTrainer(release: Promise<void>): Trainer & { runs: string[] } {
  const runs: string[] = [];
  return {
    runs,
    async run(job, ctx) {
      runs.push(job.node!);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(resolve, HOLD_MS);
        void release.then(() => {
          clearTimeout(timer);
          resolve();
        });
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(timer);
          reject(ctx.signal.reason);
        }, { once: true });
      });
      return { resultVersion: 2, activated: false, metrics: {} } satisfies TrainerResult;
    },
  };
}

/** Two job workers ("a" and "b") on `link` until `fn` returns. */
async function withWorkers(
  link: FleetLink,
  dir: string,
  trainer: Trainer,
  fn: (log: string[]) => Promise<void>,
): Promise<void> {
  const log: string[] = [];
  const drain = new AbortController();
  const workers = ["a", "b"].map((node) =>
    runJobWorker(link, {
      node,
      trainer,
      workRoot: join(dir, node),
      log: (line) => log.push(`${node}: ${line}`),
      connected: () => true,
    }, { drain: drain.signal, stop: new AbortController().signal })
  );
  try {
    await fn(log);
  } finally {
    drain.abort();
    await Promise.all(workers);
  }
}

async function queueJob(link: FleetLink, id: string, change: Partial<FleetJob> = {}): Promise<void> {
  const dataset = zipSync({ "images/a.png": new Uint8Array([1]), "labels/a.txt": new Uint8Array() });
  await link.jobData.putBlob({ name: datasetObject(id) }, dataset);
  await link.jobs.put(
    id,
    JSON.stringify({ ...fleetJobState(id, "queued"), node: null, attempts: 0, ...change }),
  );
}

async function read(link: FleetLink, id: string): Promise<FleetJob> {
  return FleetJobSchema.parse((await link.jobs.get(id))!.json());
}

/** Items the consumer still holds (waiting or delivered and not acked). */
async function itemsLeft(link: FleetLink): Promise<number> {
  const consumer = await link.js.consumers.get(link.work.stream, link.work.consumer);
  const info = await consumer.info();
  return info.num_pending + info.num_ack_pending;
}

Deno.test({
  name: "work item: a second item of a job that runs, or ended, is dropped; the job runs once",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const release = Promise.withResolvers<void>();
      const trainer = heldTrainer(release.promise);
      await withWorkers(link, dir, trainer, async (log) => {
        await queueJob(link, "dup");
        await publishWork(link, { id: "dup", handBacks: 0 });
        const running = await until("a worker to run the job", async () => {
          const now = await read(link, "dup");
          return now.status === "running" ? now : null;
        });
        // The same item again under another message id (the duplicate window does not stop it): the idle
        // worker is given it while the job runs.
        await link.js.publish(link.work.subject, JSON.stringify({ id: "dup", handBacks: 0 }), {
          msgID: "again",
        });
        await until(
          "the idle worker to drop the second item",
          () =>
            log.find((l) =>
              l.includes(`dropped a second work item (work item ${running.workItem} runs it)`)
            ) ?? null,
        );
        release.resolve();
        await until(
          "the job to succeed",
          async () => (await read(link, "dup")).status === "succeeded" || null,
        );
        await link.js.publish(link.work.subject, JSON.stringify({ id: "dup", handBacks: 0 }), {
          msgID: "late",
        });
        await until("every item to be acked", async () => await itemsLeft(link) === 0 || null);
        assert.deepEqual(trainer.runs, [running.node], "run once, on the node that took it");
        assert.equal((await read(link, "dup")).attempts, 1);
      });
    });
  },
});

Deno.test({
  name:
    "work item: a hand-back cut off before or after publishing its new item runs the job once, as handed back",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const release = Promise.withResolvers<void>();
      release.resolve();
      const trainer = heldTrainer(release.promise);
      await withWorkers(link, dir, trainer, async (log) => {
        // Both had their state written by a hand-back (queued, one hand-back); "unpublished" lost its new item
        // with the node, so only the old item comes back; "unacked" has both.
        for (const id of ["unpublished", "unacked"]) {
          await queueJob(link, id, { handBacks: 1, attempts: 1 });
          await publishWork(link, { id, handBacks: 0 });
        }
        await publishWork(link, { id: "unacked", handBacks: 1 });
        for (const id of ["unpublished", "unacked"]) {
          await until(
            `job ${id} to succeed`,
            async () => (await read(link, id)).status === "succeeded" || null,
          );
        }
        await until("every item to be acked", async () => await itemsLeft(link) === 0 || null);
        assert.equal(trainer.runs.length, 2, log.join("\n"));
        for (const id of ["unpublished", "unacked"]) {
          const done = await read(link, id);
          assert.deepEqual([done.attempts, done.handBacks], [2, 1]);
          assert.equal(
            log.filter((l) => l.includes(`job ${id}: dropped a work item that a hand-back`)).length,
            1,
          );
        }
      });
    });
  },
});

Deno.test({
  name:
    "work item: a node taken for dead that went on stops its run at the takeover and writes nothing over it",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const release = Promise.withResolvers<void>();
      const trainer = heldTrainer(release.promise);
      await withWorkers(link, dir, trainer, async (log) => {
        await queueJob(link, "quiet");
        await publishWork(link, { id: "quiet", handBacks: 0 });
        const running = await until("a worker to run the job", async () => {
          const now = await read(link, "quiet");
          return now.status === "running" ? now : null;
        });
        // What the node taking a redelivery writes (its node, one more attempt), as if this one had gone quiet.
        const entry = (await link.jobs.get("quiet"))!;
        const takenOver: FleetJob = { ...running, node: "z", attempts: running.attempts + 1 };
        await link.jobs.update("quiet", JSON.stringify(takenOver), entry.revision);
        await until(
          "the running node to see the takeover",
          () => log.find((l) => l.includes("job quiet stopped here: taken over by z")) ?? null,
        );
        assert.deepEqual(await read(link, "quiet"), takenOver);
        assert.equal(await itemsLeft(link), 1, "its work item is left to z: neither acked nor terminated");
        release.resolve();
      });
    });
  },
});
