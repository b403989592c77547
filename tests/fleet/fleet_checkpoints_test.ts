/**
 * A fleet job's checkpoints (src/fleet/fleet_checkpoints.ts) against a real nats-server: a checkpoint whose job
 * is handed back while it uploads is never named in the shared state (the node taking over reads the previous
 * one), and a drain's checkpoint that cannot be uploaded (NATS down) is kept on the node and used when it runs
 * the job again and the fleet's is not as far.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { FleetCheckpoints } from "../../src/fleet/fleet_checkpoints.ts";
import { FsCheckpoints } from "../../src/jobs/checkpoint.ts";
import { checkpointObject } from "../../src/fleet/job_state.ts";
import type { FleetLink } from "../../src/fleet/link.ts";
import { NO_NATS } from "../../src/fleet/local_nats.ts";
import { SharedJob } from "../../src/fleet/shared_job.ts";
import type { Checkpoint } from "../../src/jobs/types.ts";
import { fleetJobState, withFleet } from "./_fleet_job.ts";

/** Several 128 KiB chunks, as a real checkpoint has. */
const STATE_BYTES = 1 << 20;

/** Well under the client's request timeout (5 s): a save that did not wait for NATS. */
const NO_WAIT_MS = 2_000;
/** Bound on the client reconnecting and JetStream answering after the server restarts. */
const RECONNECT_MS = 30_000;

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
/** A loaded checkpoint as plain values (the object store hands back a Buffer). */
const plain = (c: Checkpoint | null) => c && { ...c, state: new Uint8Array(c.state) };

async function open(
  link: FleetLink,
  id: string,
  localDir: string,
  draining = new AbortController().signal,
  connected = () => true,
) {
  const shared = new SharedJob(link, id);
  await shared.read();
  return new FleetCheckpoints({ link, id, shared, localDir, draining, connected, log: () => {} });
}

Deno.test({
  name:
    "fleet checkpoints: handed back while uploading, a checkpoint is never named; the previous one is read",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const id = "job-handback";
      await link.jobs.put(id, JSON.stringify(fleetJobState(id)));
      const running = await open(link, id, join(dir, "a"));
      await running.save({ epoch: 1, iteration: 0, state: bytes(1000, 1) });

      const cutOff = running.save({ epoch: 1, iteration: 7, state: bytes(STATE_BYTES, 2) });
      running.handBack();
      await assert.rejects(cutOff, /handed back before its checkpoint of epoch 1, iteration 7 was uploaded/);
      const next = await open(link, id, join(dir, "b"));
      assert.deepEqual(plain(await next.load()), { epoch: 1, iteration: 0, state: bytes(1000, 1) });
      assert.equal(
        await link.jobData.getBlob(checkpointObject(id, { epoch: 1, iteration: 7 })),
        null,
        "deleted",
      );
    });
  },
});

Deno.test({
  name: "fleet checkpoints: a save that went out before the hand-back is the one the next node reads",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const id = "job-saved";
      await link.jobs.put(id, JSON.stringify(fleetJobState(id)));
      const running = await open(link, id, join(dir, "a"));
      await running.save({ epoch: 0, iteration: 5, state: bytes(1000, 3) });
      running.handBack();
      const next = await open(link, id, join(dir, "b"));
      assert.deepEqual(plain(await next.load()), { epoch: 0, iteration: 5, state: bytes(1000, 3) });
    });
  },
});

Deno.test({
  name: "fleet checkpoints: a drain's checkpoint NATS cannot take is kept on the node and resumed from there",
  ignore: NO_NATS !== null,
  sanitizeOps: false, // the client's reconnect timers while the server is down
  sanitizeResources: false,
  async fn() {
    await withFleet(async (link, nats, dir) => {
      const id = "job-outage";
      await link.jobs.put(id, JSON.stringify(fleetJobState(id)));
      const localDir = join(dir, "a");
      const kept = new FsCheckpoints(localDir);
      const draining = new AbortController();
      let up = true;
      const running = await open(link, id, localDir, draining.signal, () => up);
      await running.save({ epoch: 1, iteration: 0, state: bytes(1000, 4) });
      // Outside a drain a failed upload fails the save, as before.
      await nats.stop();
      await assert.rejects(running.save({ epoch: 1, iteration: 2, state: bytes(1000, 5) }));
      assert.equal(await kept.load(), null);
      // A drain's upload that fails is kept ...
      draining.abort();
      await running.save({ epoch: 1, iteration: 3, state: bytes(1000, 6) });
      assert.deepEqual(await kept.load(), { epoch: 1, iteration: 3, state: bytes(1000, 6) });
      // ... and one made while the node knows NATS is down is not tried (the drain does not wait for it).
      up = false;
      const tried = Date.now();
      await running.save({ epoch: 1, iteration: 4, state: bytes(1000, 8) });
      assert.ok(Date.now() - tried < NO_WAIT_MS, `kept after ${Date.now() - tried} ms`);

      await nats.restart();
      for (const deadline = Date.now() + RECONNECT_MS; !await link.jobs.get(id).catch(() => null);) {
        assert.ok(Date.now() < deadline, `JetStream not back within ${RECONNECT_MS} ms`);
      }
      // This node runs the job again: the kept checkpoint is further along than the fleet's.
      const again = await open(link, id, localDir);
      assert.deepEqual(plain(await again.load()), { epoch: 1, iteration: 4, state: bytes(1000, 8) });
      // Its next checkpoint reaches the fleet, and the kept one goes.
      await again.save({ epoch: 2, iteration: 0, state: bytes(1000, 7) });
      await assert.rejects(Deno.stat(localDir), Deno.errors.NotFound);
      // Another node (nothing kept there) reads the fleet's.
      const other = await open(link, id, join(dir, "b"));
      assert.deepEqual(plain(await other.load()), { epoch: 2, iteration: 0, state: bytes(1000, 7) });
    });
  },
});
