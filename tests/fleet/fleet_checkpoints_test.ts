/**
 * A fleet job's checkpoints (src/fleet/fleet_checkpoints.ts) against a real nats-server: a checkpoint whose job
 * is handed back while it uploads is never named in the shared state (the node taking over reads the previous
 * one), and a drain's checkpoint that cannot be uploaded (NATS down) is kept on the node and used when it runs
 * the job again and the fleet's is not as far.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { FleetCheckpoints } from "../../src/fleet/fleet_checkpoints.ts";
import { checkpointObject, type FleetJob } from "../../src/fleet/job_state.ts";
import { connectFleet, type FleetLink } from "../../src/fleet/link.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { SharedJob } from "../../src/fleet/shared_job.ts";
import type { Checkpoint, Job } from "../../src/jobs/types.ts";

/** Several 128 KiB chunks, as a real checkpoint has. */
const STATE_BYTES = 1 << 20;

function state(id: string): FleetJob {
  const job: Job = {
    id,
    seq: 0,
    model: "tiny",
    baseVersion: 1,
    adapter: "default",
    config: parseFinetuneConfig({ epochs: 3 }),
    status: "running",
    createdAt: new Date().toISOString(),
    startedAt: null,
    finishedAt: null,
    dataset: { files: 2, bytes: 10 },
    progress: {
      epoch: 0,
      epochs: 3,
      iteration: 0,
      iterations: 0,
      lossItems: null,
      lr: null,
      imagesPerSecond: null,
      etaSeconds: null,
      metrics: null,
    },
    resultVersion: null,
    activated: null,
    error: null,
    attempts: 1,
    node: "a",
    checkpoint: null,
  };
  return {
    job,
    status: "running",
    node: "a",
    attempts: 1,
    progress: job.progress,
    checkpoint: null,
    result: null,
    error: null,
    heartbeat: null,
  };
}

/** Bound on the client reconnecting and JetStream answering after the server restarts. */
const RECONNECT_MS = 30_000;

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
/** A loaded checkpoint as plain values (the object store hands back a Buffer). */
const plain = (c: Checkpoint | null) => c && { ...c, state: new Uint8Array(c.state) };

async function withFleet(
  fn: (link: FleetLink, nats: NatsServer, dir: string) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-checkpoints-" });
  const nats = await NatsServer.start(dir);
  const link = await connectFleet({ servers: nats.url, fleet: "ckpt", node: "a" });
  try {
    await fn(link, nats, dir);
  } finally {
    await link.nc.close();
    await nats.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

async function open(link: FleetLink, id: string, localDir: string, draining = new AbortController().signal) {
  const shared = new SharedJob(link, id);
  await shared.read();
  return new FleetCheckpoints({ link, id, shared, localDir, draining, log: () => {} });
}

Deno.test({
  name:
    "fleet checkpoints: handed back while uploading, a checkpoint is never named; the previous one is read",
  ignore: NO_NATS !== null,
  async fn() {
    await withFleet(async (link, _nats, dir) => {
      const id = "job-handback";
      await link.jobs.put(id, JSON.stringify(state(id)));
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
      await link.jobs.put(id, JSON.stringify(state(id)));
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
      await link.jobs.put(id, JSON.stringify(state(id)));
      const localDir = join(dir, "a");
      const draining = new AbortController();
      const running = await open(link, id, localDir, draining.signal);
      await running.save({ epoch: 1, iteration: 0, state: bytes(1000, 4) });
      // Outside a drain a failed upload fails the save, as before.
      await nats.stop();
      await assert.rejects(running.save({ epoch: 1, iteration: 2, state: bytes(1000, 5) }));
      assert.equal(running.keptLocally, false);
      draining.abort();
      await running.save({ epoch: 1, iteration: 3, state: bytes(1000, 6) });
      assert.equal(running.keptLocally, true);

      await nats.restart();
      for (const deadline = Date.now() + RECONNECT_MS; !await link.jobs.get(id).catch(() => null);) {
        assert.ok(Date.now() < deadline, `JetStream not back within ${RECONNECT_MS} ms`);
      }
      // This node runs the job again: the kept checkpoint is further along than the fleet's.
      const again = await open(link, id, localDir);
      assert.deepEqual(plain(await again.load()), { epoch: 1, iteration: 3, state: bytes(1000, 6) });
      // Its next checkpoint reaches the fleet, and the kept one goes.
      await again.save({ epoch: 2, iteration: 0, state: bytes(1000, 7) });
      assert.equal(again.keptLocally, false);
      await assert.rejects(Deno.stat(localDir), Deno.errors.NotFound);
      // Another node (nothing kept there) reads the fleet's.
      const other = await open(link, id, join(dir, "b"));
      assert.deepEqual(plain(await other.load()), { epoch: 2, iteration: 0, state: bytes(1000, 7) });
    });
  },
});
