/**
 * What a node's earlier fleet runs left under its work root (a kill -9 mid-job, a drain whose checkpoint stayed
 * on the node) is cleared when its job worker starts: datasets and outputs always, a kept checkpoint once its
 * job is no longer the fleet's to run (ended, or gone).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { runJobWorker } from "../../src/fleet/job_worker.ts";
import { NO_NATS } from "../../src/fleet/local_nats.ts";
import type { Trainer } from "../../src/jobs/types.ts";
import { fleetJobState, withFleet } from "./_fleet_job.ts";

const unused: Trainer = {
  run: () => Promise.reject(new Error("the worker takes no job in this test")),
};

Deno.test({
  name:
    "fleet job worker: leftovers of earlier runs are swept at start; a checkpoint its job may still use stays",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const workRoot = join(dir, "fleet-jobs");
      const layout = ["dataset/images/a.png", "work/trace.jsonl", "checkpoint/checkpoint.json"];
      const jobs = { "job-running": "running", "job-queued": "queued", "job-ended": "succeeded" } as const;
      for (const [id, status] of Object.entries(jobs)) {
        await link.jobs.put(id, JSON.stringify(fleetJobState(id, status)));
      }
      for (const id of [...Object.keys(jobs), "job-gone"]) {
        for (const file of layout) {
          await Deno.mkdir(join(workRoot, id, file, ".."), { recursive: true });
          await Deno.writeTextFile(join(workRoot, id, file), "x");
        }
      }
      const drained = new AbortController();
      drained.abort(); // sweep, then take nothing
      const options = { node: "a", trainer: unused, workRoot, log: () => {}, connected: () => true };
      await runJobWorker(link, options, { drain: drained.signal, stop: new AbortController().signal });

      const left = await Array.fromAsync(Deno.readDir(workRoot), (e) => e.name);
      assert.deepEqual(left.sort(), ["job-queued", "job-running"]);
      for (const id of left) {
        assert.deepEqual(await Array.fromAsync(Deno.readDir(join(workRoot, id)), (e) => e.name), [
          "checkpoint",
        ]);
      }
    });
  },
});
