import assert from "node:assert/strict";
import sharp from "sharp";
import { createApp } from "../../../src/api/app.ts";
import { MemoryStore } from "../../../src/registry/memory_store.ts";
import { Registry, sha256 } from "../../../src/registry/registry.ts";
import { nativeBackend } from "../../../src/serving/backends/native.ts";
import { ModelPool } from "../../../src/serving/pool.ts";
import { addModel } from "../../onnx/_models.ts";
import { tinyYolo } from "../../onnx/_tiny_yolo.ts";

const MAX_BYTES = 64 * 1024; // tiny models are ~5 KB
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };
const REMOTE = { remoteAddr: { transport: "tcp", hostname: "198.51.100.7", port: 40000 } };

async function setup(apiKey: string | null = null) {
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: MAX_BYTES });
  registry.setActivator(async (meta, bytes) => {
    await pool.swap(meta.name, meta.version, bytes);
  });
  const app = createApp({ pool, registry, apiKey });
  const call = (path: string, init: RequestInit = {}, env: object = LOOPBACK) => app.request(path, init, env);
  const upload = (name: string, bytes: Uint8Array, query = "", env: object = LOOPBACK, headers = {}) =>
    call(`/v1/models/${name}${query}`, {
      method: "POST",
      body: bytes as Uint8Array<ArrayBuffer>,
      headers: { "content-type": "application/octet-stream", ...headers },
    }, env);
  return { pool, registry, call, upload, close: () => pool.close() };
}

const png = () =>
  sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 90, g: 140, b: 60 } } }).png()
    .toBuffer();

Deno.test("versions routes: upload, list, download, activate, detect names the version, delete", async () => {
  const s = await setup();
  try {
    const a = tinyYolo({ seed: 1 });
    const b = tinyYolo({ seed: 2 });
    const r1 = await s.upload("tiny", a, "?activate=true");
    assert.equal(r1.status, 201);
    const m1 = await r1.json();
    assert.deepEqual([m1.version, m1.active, m1.sha256, m1.source], [1, true, await sha256(a), {
      type: "upload",
    }]);
    const r2 = await s.upload("tiny", b);
    assert.equal(r2.status, 201);
    assert.deepEqual([(await r2.json()).version, s.pool.get("tiny")?.ref.version], [2, 1]);

    const list = await (await s.call("/v1/models/tiny/versions")).json();
    assert.equal(list.active, 1);
    assert.deepEqual(list.versions.map((v: { version: number }) => v.version), [1, 2]);
    const model = await (await s.call("/v1/models/tiny")).json();
    assert.deepEqual([model.version, model.versions], [1, list.versions]);

    const dl = await s.call("/v1/models/tiny/versions/2.onnx");
    assert.equal(dl.status, 200);
    assert.deepEqual(new Uint8Array(await dl.arrayBuffer()), b);
    assert.equal(dl.headers.get("x-model-sha256"), await sha256(b));

    const detect = async () => {
      const res = await s.call("/v1/models/tiny/detect", {
        method: "POST",
        body: await png(),
        headers: { "content-type": "image/png" },
      });
      assert.equal(res.status, 200);
      return (await res.json()).model;
    };
    assert.deepEqual(await detect(), { name: "tiny", version: 1 });
    const act = await s.call("/v1/models/tiny/activate", {
      method: "POST",
      body: JSON.stringify({ version: 2 }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(act.status, 200);
    assert.deepEqual(await detect(), { name: "tiny", version: 2 });

    assert.equal((await s.call("/v1/models/tiny/versions/2", { method: "DELETE" })).status, 409);
    assert.equal((await s.call("/v1/models/tiny/versions/1", { method: "DELETE" })).status, 204);
    assert.equal((await s.call("/v1/models/tiny/versions/1.onnx")).status, 404);
    assert.equal((await s.call("/v1/models/tiny/versions/9", { method: "DELETE" })).status, 404);
  } finally {
    await s.close();
  }
});

Deno.test("versions routes: rejected uploads answer 4xx and leave the registry unchanged", async () => {
  const s = await setup();
  try {
    await s.upload("tiny", tinyYolo({ seed: 1 }), "?activate=true");
    const cases: [string, Uint8Array, number, string][] = [
      ["tiny", new TextEncoder().encode("garbage"), 422, "invalid_model"],
      ["tiny", addModel("raw"), 422, "invalid_model"],
      ["tiny", new Uint8Array(MAX_BYTES + 1), 413, "too_large"],
      ["bad name!", tinyYolo({ seed: 3 }), 400, "invalid_request"],
    ];
    for (const [name, bytes, status, code] of cases) {
      const res = await s.upload(encodeURIComponent(name), bytes, "?activate=true");
      assert.equal(res.status, status, `${name} ${bytes.length}`);
      assert.equal((await res.json()).error.code, code);
    }
    assert.deepEqual(s.registry.model("tiny").versions.map((v) => v.version), [1]);
    assert.equal(s.registry.model("tiny").active, 1);
    assert.equal(s.pool.get("tiny")?.ref.version, 1);
    const bad = await s.call("/v1/models/tiny/activate", {
      method: "POST",
      body: JSON.stringify({ version: 7 }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(bad.status, 404);
  } finally {
    await s.close();
  }
});

Deno.test("versions routes: mutations need the Bearer key when one is set, loopback otherwise", async () => {
  const open = await setup(null);
  const keyed = await setup("k3y");
  try {
    assert.equal((await open.upload("tiny", tinyYolo(), "", REMOTE)).status, 403);
    assert.equal((await open.call("/v1/models/tiny/versions/1", { method: "DELETE" }, REMOTE)).status, 403);
    assert.equal((await keyed.upload("tiny", tinyYolo(), "", LOOPBACK)).status, 401);
    assert.equal(
      (await keyed.upload("tiny", tinyYolo(), "", REMOTE, { authorization: "Bearer k3y" })).status,
      201,
    );
    assert.equal((await open.call("/v1/models/tiny/versions", {}, REMOTE)).status, 404, "reads need no key");
  } finally {
    await open.close();
    await keyed.close();
  }
});
