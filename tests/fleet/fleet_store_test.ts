/**
 * The fleet store's compare-and-set: an activation based on a KV revision that another node has since moved is
 * refused with `conflict` and leaves the local active pointer alone; one based on the current revision lands.
 */
import assert from "node:assert/strict";
import { FleetStore } from "../../src/fleet/fleet_store.ts";
import { activeKey } from "../../src/fleet/keys.ts";
import { connectFleet } from "../../src/fleet/link.ts";
import { RegistryView } from "../../src/fleet/registry_view.ts";
import { RegistryError } from "../../src/registry/errors.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";

const META = {
  sha256: "0".repeat(64),
  size: 1,
  created: "2026-01-01T00:00:00.000Z",
  parent: null,
  source: { type: "upload" as const },
  metrics: null,
  nc: 1,
  names: ["a"],
  input_height: null,
  input_width: null,
};

Deno.test({
  name: "fleet store: an activation on a stale KV revision is a conflict; ids come from the fleet counter",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-store-" });
    const nats = await NatsServer.start(dir);
    const link = await connectFleet({ servers: nats.url, fleet: "cas", node: "t" });
    try {
      const view = new RegistryView();
      const local = new MemoryStore();
      const store = new FleetStore(local, view, "t");
      store.start();
      store.connected(link);
      const [one, two] = [
        await store.addVersion("m", new Uint8Array([1]), META),
        await store.addVersion("m", new Uint8Array([2]), META),
      ];
      assert.deepEqual([one.version, two.version], [1, 2]);
      await store.setActive("m", 1);
      // Another node activates 2: the KV revision moves past what this node's view holds.
      await link.registry.put(activeKey("m"), JSON.stringify({ version: 2 }));
      await assert.rejects(
        () => store.setActive("m", 1),
        (err) => err instanceof RegistryError && err.code === "conflict",
      );
      const entry = (await link.registry.get(activeKey("m")))!;
      assert.equal(entry.json<{ version: number }>().version, 2, "the other node's write stands");
      view.apply(entry);
      await store.setActive("m", 1);
      assert.equal((await local.load()).get("m")!.active, 1);
    } finally {
      await link.nc.close();
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
