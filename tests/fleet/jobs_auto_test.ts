/**
 * `--jobs auto`: a box with a hardware GPU takes jobs; one without takes them only when no other node in the
 * fleet takes jobs on a hardware GPU (read from the presence bucket when it joins).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { probeGpu } from "../../src/fleet/gpu_probe.ts";
import { connectFleet } from "../../src/fleet/link.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { type NodeInfo, openPresence } from "../../src/fleet/presence.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

/** Bound on a node joining and writing its presence record. */
const JOIN_TIMEOUT_MS = 30_000;

const GPU_BOX: NodeInfo = {
  name: "gpu-box",
  last_seen: new Date().toISOString(),
  backend: "native",
  adapter: "a hardware GPU",
  hardware_gpu: true,
  jobs: true,
  active: {},
  kv_lag: 0,
  detect: [],
};

Deno.test({
  name: "--jobs auto: on without a hardware GPU only when no other node trains on one",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-auto-" });
    const nats = await NatsServer.start(dir);
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const hardware = (await probeGpu())?.hardware === true;
    const jobsOf = async (fleet: string, name: string) => {
      const node = await startServer(ServerConfigSchema.parse({
        port: 0,
        dataDir: join(dir, `${fleet}-${name}`),
        models: [modelPath],
        backend: "native",
        nats: nats.url,
        node: name,
        fleet,
        jobs: "auto",
      }));
      try {
        await node.ready;
        const deadline = Date.now() + JOIN_TIMEOUT_MS;
        while (Date.now() < deadline) {
          const report = await (await fetch(`${node.url}/v1/fleet`)).json();
          const self = report.nodes.find((n: NodeInfo) => n.name === name);
          if (report.connected && self) return self.jobs as boolean;
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`${name} did not join within ${JOIN_TIMEOUT_MS} ms`);
      } finally {
        await node.shutdown();
      }
    };
    const link = await connectFleet({ servers: nats.url, fleet: "withgpu", node: "test" });
    try {
      await (await openPresence(link, "withgpu")).put(GPU_BOX.name, JSON.stringify(GPU_BOX));
      assert.equal(await jobsOf("cpuonly", "a"), true, "alone, a box trains whatever its adapter");
      assert.equal(await jobsOf("withgpu", "b"), hardware, "beside a GPU node, only a GPU box trains");
    } finally {
      await link.nc.close();
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
