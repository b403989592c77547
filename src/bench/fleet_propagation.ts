/**
 * fleet_propagation: how long after an upload with `?activate=true` on one node every node of a fleet serves the
 * new version (a detection answered by it), for 2 and 5 nodes on one loopback nats-server. The nodes are
 * in-process servers sharing this process's event loop and the machine's cores, so the figure includes their
 * contention: copying the ONNX from the object store, building and warming up a session on each node.
 * Each upload is a fresh small YOLOv5 (new_model at depth 0.33, width 0.25, 128 px).
 */
import sharp from "sharp";
import { join } from "node:path";
import { type RunningServer, startServer } from "../api/server.ts";
import { ServerConfigSchema } from "../config/server.ts";
import { NATS_SERVER, NatsServer } from "../fleet/local_nats.ts";
import { newModelBytes } from "../train/new_model.ts";

const FLEET_SIZES = [2, 5];
/** Uploads timed per fleet size (the median is reported). */
const ROUNDS = 3;
const POLL_MS = 10;
/** A round that takes longer than this fails the bench line. */
const ROUND_TIMEOUT_MS = 60_000;

const model = (seed: number) => newModelBytes({ nc: 2, depth: 0.33, width: 0.25, imgsz: 128, seed });
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function served(node: RunningServer, image: Uint8Array): Promise<number | null> {
  const res = await fetch(`${node.url}/v1/models/bench/detect`, {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: image as Uint8Array<ArrayBuffer>,
  });
  const body = await res.json();
  return res.ok ? body.model.version : null;
}

async function waitFor(what: string, probe: () => Promise<boolean> | boolean): Promise<void> {
  const deadline = Date.now() + ROUND_TIMEOUT_MS;
  while (!await probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}

async function measure(size: number, image: Uint8Array): Promise<number[]> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-bench-fleet-" });
  const nats = await NatsServer.start(dir);
  const nodes: RunningServer[] = [];
  try {
    const first = join(dir, "bench.onnx");
    await Deno.writeFile(first, model(1));
    for (let i = 0; i < size; i++) {
      const node = await startServer(ServerConfigSchema.parse({
        port: 0,
        dataDir: join(dir, `node${i}`),
        models: [first],
        backend: "native",
        nats: nats.url,
        node: `node${i}`,
        fleet: "bench",
        jobs: "off",
      }));
      nodes.push(node);
      await node.ready;
      await waitFor("a node to join", () => node.fleet!.connected && node.fleet!.lag === 0);
    }
    const times: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const start = performance.now();
      const res = await fetch(`${nodes[0].url}/v1/models/bench?activate=true`, {
        method: "POST",
        body: model(2 + round) as Uint8Array<ArrayBuffer>,
      });
      const { version } = await res.json();
      if (res.status !== 201) throw new Error(`upload refused: ${res.status}`);
      await Promise.all(
        nodes.map((n) => waitFor("every node to serve it", async () => await served(n, image) === version)),
      );
      times.push(performance.now() - start);
    }
    return times;
  } finally {
    for (const node of nodes) await node.shutdown();
    await nats.stop();
    await Deno.remove(dir, { recursive: true });
  }
}

export async function bench(): Promise<Record<string, unknown>> {
  if (!NATS_SERVER) throw new Error("nats-server is not installed (Debian package nats-server)");
  const image = new Uint8Array(
    await sharp({ create: { width: 128, height: 128, channels: 3, background: "#808040" } }).png().toBuffer(),
  );
  const result: Record<string, unknown> = { rounds: ROUNDS, unit: "ms from upload to every node serving it" };
  for (const size of FLEET_SIZES) {
    const times = await measure(size, image);
    result[`nodes_${size}_median_ms`] = Math.round(median(times));
    result[`nodes_${size}_max_ms`] = Math.round(Math.max(...times));
  }
  return result;
}
