import assert from "node:assert/strict";
import { join } from "node:path";
import { OnnxModel } from "../../src/onnx/model.ts";
import { inspectYolo } from "../../src/onnx/yolo.ts";
import { FsStore } from "../../src/registry/fs_store.ts";
import { Registry, sha256 } from "../../src/registry/registry.ts";
import { type ChildServer, startChild } from "./_child_server.ts";

/** The embedded default model, and a fixture image it finds a shape on. */
const MODEL = new URL("../../models/default.onnx", import.meta.url);
const IMAGE = new URL("../fixtures/shapes/images/shapes_0001.png", import.meta.url);
// Kill points as fractions of the operation's measured duration, so each lands in a different phase
// (reading the body, verifying/building the session, writing files, switching, writing the pointer).
const KILL_AT = [0.2, 0.5, 0.8, 0.95];

/** The model with one head bias nudged: a different file (and sha256), same size and graph. */
async function variant(delta: number): Promise<Uint8Array<ArrayBuffer>> {
  const model = OnnxModel.parse(await Deno.readFile(MODEL));
  const bias = model.getInitializer("model.24.m.2.bias");
  bias.data[4] += delta;
  model.setInitializer("model.24.m.2.bias", bias.data);
  return model.toBytes();
}

/**
 * The data dir after a restart: every version whole (bytes match their sha256, a parseable YOLO detector)
 * and one of the files we sent, no version twice, the active pointer on an existing version, no leftovers.
 */
async function assertConsistent(
  dataDir: string,
  sent: Set<string>,
): Promise<{ versions: number[]; active: number }> {
  const registry = await Registry.open(new FsStore(dataDir), { maxBytes: 1 << 30 });
  const model = registry.model("shapes");
  const shas = new Set<string>();
  for (const meta of model.versions) {
    const bytes = await registry.read("shapes", meta.version);
    inspectYolo(OnnxModel.parse(bytes));
    assert.ok(sent.has(meta.sha256), `version ${meta.version} holds a file that was never sent`);
    assert.ok(!shas.has(meta.sha256), `the file of version ${meta.version} is stored twice`);
    shas.add(meta.sha256);
  }
  assert.ok(model.active !== null && model.versions.some((v) => v.version === model.active));
  const entries = [];
  for await (const e of Deno.readDir(join(dataDir, "models/shapes"))) entries.push(e.name);
  assert.deepEqual(
    entries.filter((e) => !/^(versions|\.staging|active\.json|last_version\.json)$/.test(e)),
    [],
  );
  return { versions: model.versions.map((v) => v.version), active: model.active! };
}

/** The restarted server serves the active version, and its listing matches the disk. */
async function assertServes(server: ChildServer, state: { versions: number[]; active: number }) {
  const listing = await (await fetch(`${server.base}/v1/models/shapes/versions`)).json();
  assert.deepEqual([listing.active, listing.versions.map((v: { version: number }) => v.version)], [
    state.active,
    state.versions,
  ]);
  const res = await fetch(`${server.base}/v1/models/shapes/detect`, {
    method: "POST",
    headers: { "content-type": "image/png" },
    body: await Deno.readFile(IMAGE),
  });
  const body = await res.json();
  assert.equal(res.status, 200, JSON.stringify(body));
  assert.deepEqual(body.model, { name: "shapes", version: state.active });
  assert.ok(body.detections.length > 0);
}

const post = (server: ChildServer, path: string, body: BodyInit, type = "application/octet-stream") =>
  fetch(`${server.base}${path}`, { method: "POST", headers: { "content-type": type }, body });

Deno.test({
  name: "a server killed with SIGKILL during upload or activate restarts on a complete, consistent registry",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-crash-" });
    const dataDir = join(dir, "data");
    const modelPath = join(dir, "shapes.onnx");
    const original = await Deno.readFile(MODEL);
    await Deno.writeFile(modelPath, original);
    const sent = new Set([await sha256(original)]);
    const args = ["--model", modelPath];
    let server = await startChild(dataDir, args);
    try {
      // Uncrashed timings of the two operations, to place the kills.
      let t = performance.now();
      const v2 = await variant(0.01);
      sent.add(await sha256(v2));
      assert.equal((await post(server, "/v1/models/shapes?activate=true", v2)).status, 201);
      const uploadMs = performance.now() - t;
      t = performance.now();
      const back = await post(
        server,
        "/v1/models/shapes/activate",
        JSON.stringify({ version: 1 }),
        "application/json",
      );
      assert.equal(back.status, 200);
      await back.body?.cancel();
      const activateMs = performance.now() - t;

      let state = await assertConsistent(dataDir, sent);
      const outcomes: string[] = [];
      for (const [i, fraction] of KILL_AT.entries()) {
        for (const op of ["upload", "activate"] as const) {
          let request: Promise<Response>;
          if (op === "upload") {
            const bytes = await variant(0.02 * (i + 2));
            sent.add(await sha256(bytes));
            request = post(server, "/v1/models/shapes?activate=true", bytes);
          } else {
            const target = state.versions.find((v) => v !== state.active)!;
            request = post(
              server,
              "/v1/models/shapes/activate",
              JSON.stringify({ version: target }),
              "application/json",
            );
          }
          const settled = request.then((r) => r.body?.cancel(), () => {}); // the kill resets the connection
          await new Promise((r) => setTimeout(r, fraction * (op === "upload" ? uploadMs : activateMs)));
          await server.kill();
          await settled;
          const before = state;
          server = await startChild(dataDir, args);
          state = await assertConsistent(dataDir, sent);
          await assertServes(server, state);
          assert.ok(
            before.versions.every((v) => state.versions.includes(v)),
            `${op} at ${fraction} lost a version`,
          );
          assert.ok(state.versions.length - before.versions.length <= (op === "upload" ? 1 : 0));
          outcomes.push(
            `${op}@${fraction}: +${state.versions.length - before.versions.length} versions, ` +
              `active ${before.active}->${state.active}`,
          );
        }
      }
      console.log(JSON.stringify({ uploadMs, activateMs, outcomes }));
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
