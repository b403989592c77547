/**
 * Canary activation: `{"version": N, "nodes": ["b"]}` makes only b serve N while the others keep the fleet's
 * active version, and `GET /v1/fleet` shows each node's detects of the last minute per version side by side; a
 * plain activation of N (here on the canary node itself) promotes it to every node. Without a fleet, `nodes` is
 * refused.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { type RunningServer, startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { until as poll } from "../_helpers/poll.ts";

/** Bound on a change reaching every node. */
const PROPAGATION_TIMEOUT_MS = 30_000;

const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#808040" } }).png()
  .toBuffer();

async function servedVersion(node: RunningServer): Promise<number> {
  const res = await fetch(`${node.url}/v1/models/tiny/detect`, {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: image,
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  return body.model.version;
}

/** Waits for `probe` to hold. */
async function until(what: string, probe: () => Promise<boolean> | boolean): Promise<void> {
  await poll(what, PROPAGATION_TIMEOUT_MS, async () => (await probe()) || null);
}

function activate(node: RunningServer, body: unknown) {
  return fetch(`${node.url}/v1/models/tiny/activate`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

Deno.test({
  name: "canary: only the named nodes serve the version until a plain activation promotes it to all",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-canary-" });
    const nats = await NatsServer.start(dir);
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const nodes: RunningServer[] = [];
    const start = async (name: string, fleet: boolean) => {
      const node = await startServer(ServerConfigSchema.parse({
        port: 0,
        dataDir: join(dir, name),
        models: [modelPath],
        backend: "native",
        ...(fleet ? { nats: nats.url, node: name, fleet: "canary", jobs: "off" } : {}),
      }));
      nodes.push(node);
      await node.ready;
      if (fleet) await until(`${name} to join`, () => node.fleet!.connected && node.fleet!.lag === 0);
      return node;
    };
    try {
      const [a, b, c] = [await start("a", true), await start("b", true), await start("c", true)];
      const upload = await fetch(`${a.url}/v1/models/tiny`, { method: "POST", body: tinyYolo({ seed: 2 }) });
      assert.equal(upload.status, 201, await upload.text());
      await until("v2 everywhere", async () => {
        const lists = await Promise.all(
          nodes.map(async (n) => (await fetch(`${n.url}/v1/models/tiny/versions`)).json()),
        );
        return lists.every((l) => l.versions.some((v: { version: number }) => v.version === 2));
      });

      const canary = await activate(a, { version: 2, nodes: ["b"] });
      assert.equal(canary.status, 200, await canary.text());
      await until("b to serve the canary", async () => await servedVersion(b) === 2);
      await Promise.all(
        [a, c].map((n) => until("the others to take in the canary", () => n.fleet!.lag === 0)),
      );
      await Promise.all([a.fleet!.settled(), c.fleet!.settled()]);
      assert.deepEqual([await servedVersion(a), await servedVersion(c)], [1, 1], "only b runs the canary");
      // GET /v1/fleet puts the canary's detects beside the others': a and c detected once each on v1 (above), b
      // on v2 at least once (its probes until it served v2). Each node's record is at most 5 s old.
      type Detect = { model: string; version: number; count: number; p50_ms: number };
      type Reported = { name: string; detect: Detect[] };
      let compared: Reported[] = [];
      await until("every node's detects in c's /v1/fleet", async () => {
        compared = (await (await fetch(`${c.url}/v1/fleet`)).json()).nodes;
        const of = (name: string) => compared.find((n) => n.name === name)?.detect ?? [];
        return of("a").length > 0 && of("b").some((d) => d.version === 2);
      });
      const [onA, onB, onC] = ["a", "b", "c"].map((name) => compared.find((n) => n.name === name)!.detect);
      assert.deepEqual(onA.map((d) => [d.model, d.version, d.count]), [["tiny", 1, 1]]);
      assert.deepEqual(onC.map((d) => [d.model, d.version, d.count]), [["tiny", 1, 1]]);
      const canaryDetects = onB.find((d) => d.version === 2)!;
      assert.ok(canaryDetects.count >= 1);
      for (const d of [...onA, ...onB, ...onC]) {
        assert.ok(d.p50_ms > 0, `a measured latency: ${JSON.stringify(d)}`);
      }
      const deleted = await fetch(`${c.url}/v1/models/tiny/versions/2`, { method: "DELETE" });
      assert.equal(deleted.status, 409, "a canary version cannot be deleted");
      await deleted.body?.cancel();

      const promoted = await activate(b, { version: 2 });
      assert.equal(promoted.status, 200, await promoted.text());
      for (const node of [a, b, c]) {
        await until("every node to serve v2", async () => await servedVersion(node) === 2);
      }

      const alone = await start("alone", false);
      const refused = await activate(alone, { version: 1, nodes: ["x"] });
      assert.equal(refused.status, 400);
      assert.equal((await refused.json()).error.code, "invalid_request");
    } finally {
      for (const node of nodes) await node.shutdown();
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
