/**
 * Registry replication over NATS JetStream: three nodes (in-process servers on port 0) on one nats-server.
 * An upload on one is served by the others with the same bytes, ids never collide, `GET /v1/fleet` lists every
 * node, an outage leaves every node serving (and refusing changes, and a node restarted meanwhile serves its
 * data-dir copy), and after nats-server restarts every node follows the KV again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { type RunningServer, startServer } from "../../src/api/server.ts";
import { ServerConfigSchema } from "../../src/config/server.ts";
import { sha256 } from "../../src/registry/registry.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { until as poll } from "../_helpers/poll.ts";

/** Bound on a change reaching every node (loopback; generous for a loaded 2-core CI machine). */
const PROPAGATION_TIMEOUT_MS = 30_000;

/** A probe that throws (a node mid-restart) is retried. */
const until = <T>(what: string, probe: () => Promise<T | null> | T | null) =>
  poll(what, PROPAGATION_TIMEOUT_MS, probe, { retryErrors: true });

const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#808040" } }).png()
  .toBuffer();

/** The version a node serves for `tiny` (from a real detection), or the failing status. */
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

async function downloadSha(node: RunningServer, version: number): Promise<string> {
  const res = await fetch(`${node.url}/v1/models/tiny/versions/${version}.onnx`);
  assert.equal(res.status, 200);
  return sha256(new Uint8Array(await res.arrayBuffer()));
}

async function post(node: RunningServer, path: string, body: BodyInit, type: string) {
  const res = await fetch(`${node.url}${path}`, { method: "POST", headers: { "content-type": type }, body });
  return { status: res.status, body: await res.json() };
}

Deno.test({
  name:
    "fleet registry: uploads replicate, ids never collide, NATS outages leave nodes serving and converging",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-" });
    const nats = await NatsServer.start(dir);
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const nodes: RunningServer[] = [];
    try {
      const config = (name: string) =>
        ServerConfigSchema.parse({
          port: 0,
          dataDir: join(dir, name),
          models: [modelPath],
          backend: "native",
          nats: nats.url,
          node: name,
          fleet: "test",
        });
      for (const name of ["a", "b", "c"]) {
        const node = await startServer(config(name));
        nodes.push(node);
        await node.ready;
        // One node at a time joins, as a fleet grows: each finds the first one's tiny v1 (same bytes).
        await until(
          `${name} to join`,
          () => node.fleet!.connected && node.fleet!.lag === 0 ? true : null,
        );
        await node.fleet!.settled();
      }
      const [a, b, c] = nodes;

      const upload = tinyYolo({ seed: 2 });
      const uploaded = await post(a, "/v1/models/tiny?activate=true", upload, "application/octet-stream");
      assert.equal(uploaded.status, 201, JSON.stringify(uploaded.body));
      assert.equal(uploaded.body.version, 2);
      for (const node of [b, c]) {
        await until("v2 served everywhere", async () => await servedVersion(node) === 2 ? true : null);
        assert.equal(await downloadSha(node, 2), await sha256(upload));
      }

      // Simultaneous uploads on two nodes take distinct ids from the fleet's counter.
      const [onB, onC] = await Promise.all([
        post(b, "/v1/models/tiny", tinyYolo({ seed: 3 }), "application/octet-stream"),
        post(c, "/v1/models/tiny", tinyYolo({ seed: 4 }), "application/octet-stream"),
      ]);
      assert.equal(onB.status, 201, JSON.stringify(onB.body));
      assert.equal(onC.status, 201, JSON.stringify(onC.body));
      assert.deepEqual([onB.body.version, onC.body.version].sort(), [3, 4]);
      for (const node of nodes) {
        await until("v3 and v4 everywhere", async () => {
          const res = await fetch(`${node.url}/v1/models/tiny/versions`);
          const versions = (await res.json()).versions.map((v: { version: number }) => v.version);
          return versions.includes(3) && versions.includes(4) ? true : null;
        });
      }

      // GET /v1/fleet on any node lists every node with what it serves; /metrics says it is connected.
      const fleetReport = await until("every node in b's /v1/fleet serving v2", async () => {
        const report = await (await fetch(`${b.url}/v1/fleet`)).json();
        const names = report.nodes.map((n: { name: string }) => n.name);
        const serving = report.nodes.every((n: { active: Record<string, number> }) => n.active.tiny === 2);
        return report.connected && names.join() === "a,b,c" && serving ? report : null;
      });
      assert.deepEqual(fleetReport.problems, {}, "every node follows every model");
      assert.match(await (await fetch(`${a.url}/metrics`)).text(), /^kestrel_fleet_connected\{[^}]*\} 1$/m);

      await nats.stop();
      await until("a to notice the outage", async () => {
        const report = await (await fetch(`${a.url}/v1/fleet`)).json();
        return !report.connected && report.nodes.length === 1 ? true : null;
      });
      assert.match(await (await fetch(`${a.url}/metrics`)).text(), /^kestrel_fleet_connected\{[^}]*\} 0$/m);
      for (const node of nodes) {
        assert.equal(await servedVersion(node), 2, "serving goes on while NATS is down");
      }
      const refused = await post(
        a,
        "/v1/models/tiny/activate",
        JSON.stringify({ version: 3 }),
        "application/json",
      );
      assert.equal(refused.status, 503, JSON.stringify(refused.body));
      assert.equal(refused.body.error.code, "unavailable");
      for (const node of nodes) {
        assert.equal(await servedVersion(node), 2, "a refused change changes nothing");
      }
      // A restart while NATS is down serves the data dir's copy.
      await nodes[2].shutdown();
      nodes[2] = await startServer(config("c"));
      await nodes[2].ready;
      assert.equal(await servedVersion(nodes[2]), 2, "a node restarted during the outage serves its copy");

      await nats.restart();
      await until(
        "every node to reconnect",
        () => nodes.every((n) => n.fleet!.connected) ? true : null,
      );
      const rollback = await until("the roll back on b to be accepted", async () => {
        const res = await post(
          b,
          "/v1/models/tiny/activate",
          JSON.stringify({ version: 1 }),
          "application/json",
        );
        return res.status === 200 ? res : null;
      });
      assert.equal(rollback.body.version, 1);
      for (const node of nodes) {
        await until("v1 served everywhere", async () => await servedVersion(node) === 1 ? true : null);
      }

      // A delete on one node reaches the others' data dirs.
      const deleted = await fetch(`${nodes[2].url}/v1/models/tiny/versions/4`, { method: "DELETE" });
      assert.equal(deleted.status, 204, await deleted.text());
      for (const node of nodes) {
        await until("v4 deleted everywhere", async () => {
          const res = await fetch(`${node.url}/v1/models/tiny/versions/4.onnx`);
          await res.body?.cancel();
          return res.status === 404 ? true : null;
        });
      }
    } finally {
      for (const node of nodes) await node.shutdown();
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
