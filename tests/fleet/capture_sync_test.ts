/**
 * Capture replication's repair paths, driven directly on two replications over one nats-server with the failure
 * injected rather than waited for: a fleet write that fails while connected is made good by the reconcile it
 * schedules, an image the fleet lost refuses another node's dataset (never a frame silently left out) until the
 * owning node's next reconcile publishes it again, and a change made while NATS is away waits for the reconnect.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { CaptureStore } from "../../src/capture/store.ts";
import type { CaptureMeta } from "../../src/capture/types.ts";
import { CaptureReplication } from "../../src/fleet/capture_sync.ts";
import { connectFleet, type FleetLink } from "../../src/fleet/link.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { RegistryError } from "../../src/registry/errors.ts";

/** Bound on the scheduled reconcile after a failed write (it runs 1 s after the failure; loaded 2-core box). */
const RETRY_TIMEOUT_MS = 20_000;
const MODEL = "m";
const IMAGE = new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]);

interface Node {
  store: CaptureStore;
  replication: CaptureReplication;
  link: FleetLink;
  logged: string[];
}

async function openNode(name: string, nats: NatsServer, dir: string): Promise<Node> {
  const logged: string[] = [];
  const store = await CaptureStore.open(join(dir, name), (m) => logged.push(m));
  const replication = new CaptureReplication(store, name, (m) => logged.push(m));
  const link = await connectFleet({ servers: nats.url, fleet: "t", node: name });
  await replication.connected(link);
  return { store, replication, link, logged };
}

/** One frame captured on `node` and labelled as a train frame; its meta once the fleet write settled. */
async function labelOne(node: Node): Promise<CaptureMeta> {
  const { stored } = await node.store.add({
    model: MODEL,
    version: 1,
    image: IMAGE,
    format: "png",
    width: 8,
    height: 8,
    predictions: [],
    source: { route: "native", client: null, camera: null },
    time: new Date(),
  }, 1e6);
  const labelled = await node.store.update(
    stored!.id,
    (m) => ({ ...m, status: "labelled", labels: [], split: "train" }),
  );
  await node.replication.settled();
  return labelled!;
}

/** Nodes a and b on a fresh nats-server; `body` runs with them, everything stops after. */
async function withNodes(body: (a: Node, b: Node, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-capture-sync-" });
  const nats = await NatsServer.start(dir);
  const nodes: Node[] = [];
  try {
    nodes.push(await openNode("a", nats, dir), await openNode("b", nats, dir));
    await body(nodes[0], nodes[1], dir);
  } finally {
    for (const node of nodes) await node.link.nc.close();
    await nats.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "capture sync: a fleet write that fails while connected is made good by the reconcile it schedules",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withNodes(async (a, b, dir) => {
      // The image write of the label fails once, as a JetStream request that timed out would.
      const putBlob = a.link.captureImages.putBlob.bind(a.link.captureImages);
      let failures = 1;
      a.link.captureImages.putBlob = (...args) =>
        failures-- > 0 ? Promise.reject(new Error("injected write failure")) : putBlob(...args);
      const meta = await labelOne(a);
      assert.deepEqual(a.logged, ["fleet: captures: injected write failure; reconciled again"]);
      assert.deepEqual(await b.replication.writeDataset(join(dir, "before"), MODEL), { train: 0, val: 0 });

      const deadline = Date.now() + RETRY_TIMEOUT_MS;
      let counts = { train: 0, val: 0 };
      for (let round = 0; counts.train === 0; round++) {
        assert.ok(Date.now() < deadline, `the failed write reached the fleet within ${RETRY_TIMEOUT_MS} ms`);
        await new Promise((r) => setTimeout(r, 100));
        await a.replication.settled();
        counts = (await b.replication.writeDataset(join(dir, `after-${round}`), MODEL))!;
      }
      assert.deepEqual(counts, { train: 1, val: 0 });
      assert.equal(await a.link.captures.get(`${MODEL}.${meta.id}`).then((e) => e?.operation), "PUT");
    }),
});

Deno.test({
  name: "capture sync: an image the fleet lost refuses another node's dataset until its node reconciles",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withNodes(async (a, b, dir) => {
      const meta = await labelOne(a);
      assert.deepEqual(await b.replication.writeDataset(join(dir, "first"), MODEL), { train: 1, val: 0 });

      // The object goes while its key stays: b's dataset is refused, naming the capture, not written without it.
      assert.equal(await a.link.captureImages.delete(meta.id).then((r) => r.success), true);
      await assert.rejects(
        b.replication.writeDataset(join(dir, "lost"), MODEL),
        (err) =>
          err instanceof RegistryError && err.code === "unavailable" &&
          err.message.includes(`Capture ${meta.id} of node a is in the fleet without its image`),
      );

      // a's next reconcile (as on a reconnect) sees the image missing and publishes it again.
      await a.replication.connected(a.link);
      const out = join(dir, "repaired");
      assert.deepEqual(await b.replication.writeDataset(out, MODEL), { train: 1, val: 0 });
      assert.deepEqual(await Deno.readFile(join(out, "images", "train", `${meta.id}.png`)), IMAGE);
      assert.deepEqual(a.logged, [], "nothing failed on a");
    }),
});

Deno.test({
  name:
    "capture sync: a label made while NATS is away is not tried then; the reconnect's reconcile publishes it",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withNodes(async (a, b, dir) => {
      // Only the status says NATS is away (the link itself still works): a write tried now would land.
      a.replication.disconnected();
      await labelOne(a);
      assert.deepEqual(await b.replication.writeDataset(join(dir, "away"), MODEL), { train: 0, val: 0 });
      await a.replication.connected(a.link);
      assert.deepEqual(await b.replication.writeDataset(join(dir, "back"), MODEL), { train: 1, val: 0 });
      assert.deepEqual(a.logged, [], "nothing timed out or failed on a");
    }),
});
