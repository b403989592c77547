/**
 * What a fleet job's work item goes through across node processes (the stand-in trainer of _node.ts; a jobs-off
 * node posts the job and is polled): drains hand the job back without using up its deliveries, so a job stopped
 * by more rolling restarts than it has deliveries still ends; a job whose node is killed on every delivery ends
 * `failed`, saying why, instead of staying `running`.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { FleetJob } from "../../src/fleet/job_state.ts";
import { WORK_MAX_DELIVER } from "../../src/fleet/link.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import type { Job } from "../../src/jobs/types.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { oneFrameFinetuneForm } from "./_fleet_job.ts";
import { SUSPEND_SAVE_ENV } from "./_node.ts";
import { Node, until } from "./_node_child.ts";

/** More drains than the work item has deliveries. */
const DRAINS = WORK_MAX_DELIVER + 1;
const DRAIN_SECONDS = 5;

/** A fleet (nats-server, a jobs-off node "s" that posts the job) for `fn`; `start` adds a node with jobs on. */
async function withFleetNodes(
  fleet: string,
  fn: (submit: () => Promise<Job>, start: (name: string) => Promise<Node>, submitter: Node) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: `kestrel-fleet-${fleet}-` });
  const nats = await NatsServer.start(dir);
  const modelPath = join(dir, "tiny.onnx");
  await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
  const nodes: Node[] = [];
  const start = async (name: string, jobs = "on") => {
    const node = await Node.start(name, [
      ...["--port", "0", "--backend", "native", "--data-dir", join(dir, name), "--model", modelPath],
      ...["--nats", nats.url, "--node", name, "--fleet", fleet, "--jobs", jobs],
      ...["--drain-seconds", String(DRAIN_SECONDS)],
    ], { [SUSPEND_SAVE_ENV]: "0" }); // a drain's checkpoint is saved at once
    nodes.push(node);
    await node.waitFor(/fleet: node \S+ joined/);
    return node;
  };
  try {
    const submitter = await start("s", "off");
    const submit = async () => {
      const form = await oneFrameFinetuneForm(2);
      const res = await fetch(`${submitter.url}/v1/models/tiny/finetune`, { method: "POST", body: form });
      const job: Job = await res.json();
      assert.equal(res.status, 202, JSON.stringify(job));
      return job;
    };
    await fn(submit, start, submitter);
  } catch (err) {
    for (const node of nodes) console.error(`--- ${node.name}\n${node.log.join("\n")}`);
    throw err;
  } finally {
    for (const node of nodes) await node.stop();
    await nats.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

/** The job's shared state as `GET /v1/fleet/jobs` lists it. */
async function fleetState(node: Node, id: string): Promise<FleetJob | undefined> {
  const listed: { jobs: FleetJob[] } = await (await fetch(`${node.url}/v1/fleet/jobs`)).json();
  return listed.jobs.find((j) => j.job.id === id);
}

/** The job as the posting node reports it, once it ended. */
async function ended(submitter: Node, id: string): Promise<Job> {
  return await until(`job ${id} to end`, async () => {
    const job: Job = await (await fetch(`${submitter.url}/v1/jobs/${id}`)).json();
    return job.status === "queued" || job.status === "running" ? null : job;
  });
}

Deno.test({
  name:
    `fleet drain: ${DRAINS} drains in a row of one job across two nodes hand it back each time; it still ends`,
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withFleetNodes("handback", async (submit, start, submitter) => {
      const job = await submit();
      // b and c take turns, as in a rolling restart; each drain stops the job right after it started there.
      for (let drain = 1; drain <= DRAINS; drain++) {
        const node = await start(drain % 2 ? "b" : "c");
        await node.waitFor(new RegExp(`job ${job.id} starts at epoch`));
        node.child.kill("SIGTERM");
        assert.equal((await node.child.status).code, 0, node.log.join("\n"));
        assert.ok(
          node.log.some((l) => l.includes(`job ${job.id} handed back to the fleet`)),
          node.log.join("\n"),
        );
        assert.ok(!node.log.some((l) => l.includes("handed back as a delivery")), node.log.join("\n"));
      }
      const last = await start("b");
      const done = await ended(submitter, job.id);
      assert.deepEqual([done.status, done.node, done.attempts, done.error], [
        "succeeded",
        "b",
        DRAINS + 1,
        null,
      ]);
      assert.ok(last.log.some((l) => l.includes(`job ${job.id} starts at epoch`)));
      const state = await fleetState(submitter, job.id);
      assert.deepEqual([state?.status, state?.handBacks], ["succeeded", DRAINS]);
    });
  },
});

Deno.test({
  name: `fleet jobs: a job whose node is SIGKILLed on each of its ${WORK_MAX_DELIVER} deliveries ends failed`,
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    await withFleetNodes("poison", async (submit, start, submitter) => {
      const job = await submit();
      // A fresh node each time, as when a box that keeps dying is replaced.
      for (let kill = 1; kill <= WORK_MAX_DELIVER; kill++) {
        const node = await start(`k${kill}`);
        await node.waitFor(new RegExp(`job ${job.id} starts at epoch`));
        node.child.kill("SIGKILL");
        await node.child.status;
      }
      const last = await start("k-last");
      const failed = await ended(submitter, job.id);
      const why = new RegExp(`gave up after ${WORK_MAX_DELIVER} deliveries`);
      assert.equal(failed.status, "failed", JSON.stringify(failed));
      assert.match(failed.error?.message ?? "", why);
      assert.ok(
        !last.log.some((l) => l.includes(`job ${job.id} starts`)),
        "the delivery past them is not run",
      );
      const state = await fleetState(submitter, job.id);
      assert.equal(state?.status, "failed");
      assert.match(state?.error ?? "", why);
      assert.equal(state?.attempts, WORK_MAX_DELIVER);
    });
  },
});
