/**
 * A job's shared state as its running node writes it (src/fleet/shared_job.ts): closing it (the job is handed
 * back) lands a last write after the writes already made and refuses later ones, so a heartbeat under way cannot
 * put this node's record over the one of the node that took the job over.
 */
import assert from "node:assert/strict";
import { FleetJobSchema } from "../../src/fleet/job_state.ts";
import { NO_NATS } from "../../src/fleet/local_nats.ts";
import { SharedJob } from "../../src/fleet/shared_job.ts";
import { fleetJobState, withFleet } from "./_fleet_job.ts";

Deno.test({
  name: "shared job: close() lands the writes made before it, then its own, and refuses those after",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link) => {
      const id = "job-closed";
      await link.jobs.put(id, JSON.stringify(fleetJobState(id)));
      const shared = new SharedJob(link, id);
      await shared.read();
      void shared.write({ checkpoint: { epoch: 1, iteration: 4, savedAt: new Date(0).toISOString() } });
      await shared.close({ status: "queued", node: null, handBacks: 1 });
      const landed = FleetJobSchema.parse((await link.jobs.get(id))!.json());
      assert.deepEqual(landed.checkpoint, { epoch: 1, iteration: 4, savedAt: new Date(0).toISOString() });
      assert.deepEqual([landed.status, landed.node, landed.handBacks], ["queued", null, 1]);

      await assert.rejects(
        shared.write({ heartbeat: new Date().toISOString(), node: "a" }),
        /no longer this node's/,
      );
      const after = FleetJobSchema.parse((await link.jobs.get(id))!.json());
      assert.deepEqual(after, landed);
    });
  },
});

Deno.test({
  name: "shared job: once someone else wrote the job (a cancel, a takeover), this node's writes are refused",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link) => {
      const id = "job-moved";
      await link.jobs.put(id, JSON.stringify(fleetJobState(id)));
      const shared = new SharedJob(link, id);
      await shared.read();
      await shared.write({ heartbeat: new Date(1).toISOString() });
      const entry = (await link.jobs.get(id))!;
      const cancelled = { ...FleetJobSchema.parse(entry.json()), status: "cancelled" };
      await link.jobs.update(id, JSON.stringify(cancelled), entry.revision);

      await assert.rejects(shared.write({ heartbeat: new Date(2).toISOString() }), /no longer this node's/);
      await assert.rejects(shared.close({ status: "queued", node: null }), /no longer this node's/);
      assert.deepEqual(FleetJobSchema.parse((await link.jobs.get(id))!.json()), cancelled);
    });
  },
});
