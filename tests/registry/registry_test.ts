import assert from "node:assert/strict";
import { join } from "node:path";
import { FsStore } from "../../src/registry/fs_store.ts";
import { RegistryError } from "../../src/registry/errors.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry, type Registry as RegistryType, sha256 } from "../../src/registry/registry.ts";
import type { Store } from "../../src/registry/store.ts";
import { addModel } from "../onnx/_models.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { snapshot } from "./_snapshot.ts";

const MAX_BYTES = 64 * 1024; // tiny models are ~5 KB
const upload = { source: { type: "upload" as const } };

async function withDataDir(fn: (dir: string, open: () => Promise<RegistryType>) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-registry-" });
  try {
    await fn(dir, () => Registry.open(new FsStore(dir), { maxBytes: MAX_BYTES }));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

for (const [label, makeStore] of [["FsStore", null], ["MemoryStore", () => new MemoryStore()]] as const) {
  Deno.test(`Registry.add() on ${label} stores versions with meta and increasing ids`, async () => {
    const run = async (store: Store) => {
      const registry = await Registry.open(store, { maxBytes: MAX_BYTES });
      const a = tinyYolo({ seed: 1 });
      const v1 = await registry.add("det", a, upload);
      const v2 = await registry.add("det", tinyYolo({ seed: 2 }), {
        source: { type: "finetune", job_id: "job-7" },
        parent: 1,
        metrics: { map50: 0.5 },
      });
      assert.deepEqual([v1.version, v2.version], [1, 2]);
      assert.equal(v1.sha256, await sha256(a));
      assert.equal(v1.size, a.length);
      assert.deepEqual(v1.source, { type: "upload" });
      assert.deepEqual([v2.parent, v2.metrics, v2.source], [1, { map50: 0.5 }, {
        type: "finetune",
        job_id: "job-7",
      }]);
      assert.deepEqual([v1.nc, v1.names, v1.input_height], [2, ["class0", "class1"], 32]);
      assert.ok(!Number.isNaN(Date.parse(v1.created)));
      assert.deepEqual(await registry.read("det", 1), a);
      assert.equal(registry.model("det").active, null);
      await registry.activate("det", 2);
      await registry.remove("det", 1);
      await assert.rejects(registry.remove("det", 2), /is active/);
      const v3 = await registry.add("det", tinyYolo({ seed: 3 }), upload);
      assert.equal(v3.version, 3);
      await registry.remove("det", 3);
      assert.equal(
        (await registry.add("det", tinyYolo({ seed: 4 }), upload)).version,
        4,
        "ids are never reused",
      );
      assert.deepEqual(registry.model("det").versions.map((v) => v.version), [2, 4]);
    };
    if (makeStore) await run(makeStore());
    else await withDataDir((dir) => run(new FsStore(dir)));
  });
}

Deno.test("Registry.open() on the same data dir resumes versions, active pointer and the id high-water mark", async () => {
  await withDataDir(async (_dir, open) => {
    const first = await open();
    await first.add("det", tinyYolo({ seed: 1 }), { ...upload, activate: true });
    await first.add("det", tinyYolo({ seed: 2 }), upload);
    await first.remove("det", 2);
    const second = await open();
    assert.equal(second.model("det").active, 1);
    assert.deepEqual(second.model("det").versions.map((v) => v.version), [1]);
    assert.equal((await second.add("det", tinyYolo({ seed: 3 }), upload)).version, 3);
  });
});

Deno.test("Registry rejects garbage, non-YOLO, oversized and badly named uploads and leaves the data dir unchanged", async () => {
  await withDataDir(async (dir, open) => {
    const registry = await open();
    await registry.add("det", tinyYolo({ seed: 1 }), { ...upload, activate: true });
    const before = await snapshot(dir);
    const cases: [string, Uint8Array, RegExp][] = [
      ["det", new TextEncoder().encode("not an onnx file"), /Cannot parse ONNX/],
      ["det", addModel("raw"), /Not a YOLO detector/],
      ["det", new Uint8Array(MAX_BYTES + 1), /limit is 65536/],
      ["../escape", tinyYolo({ seed: 2 }), /must match/],
    ];
    for (const [name, bytes, message] of cases) {
      await assert.rejects(registry.add(name, bytes, { ...upload, activate: true }), message);
    }
    assert.deepEqual(await snapshot(dir), before);
    assert.deepEqual(registry.model("det").versions.map((v) => v.version), [1]);
    assert.equal((await open()).model("det").active, 1);
  });
});

Deno.test("Registry keeps the old active version when the activator or verify hook rejects the new one", async () => {
  await withDataDir(async (dir) => {
    let verifyFails = false;
    let activatorFails = false;
    const registry = await Registry.open(new FsStore(dir), {
      maxBytes: MAX_BYTES,
      verify: () => verifyFails ? Promise.reject(new Error("warm-up produced NaN")) : Promise.resolve(),
    });
    const swapped: number[] = [];
    registry.setActivator((meta) => {
      if (activatorFails) return Promise.reject(new Error("session build failed"));
      swapped.push(meta.version);
      return Promise.resolve();
    });
    await registry.add("det", tinyYolo({ seed: 1 }), { ...upload, activate: true });
    const before = await snapshot(dir);
    verifyFails = true;
    await assert.rejects(registry.add("det", tinyYolo({ seed: 2 }), { ...upload, activate: true }), /NaN/);
    verifyFails = false;
    activatorFails = true;
    await assert.rejects(
      registry.add("det", tinyYolo({ seed: 3 }), { ...upload, activate: true }),
      /session build/,
    );
    const after = await snapshot(dir);
    delete after["/models/det/last_version.json"]; // the rolled-back id stays burnt, by design
    delete before["/models/det/last_version.json"];
    assert.deepEqual(after, before);
    assert.equal(registry.model("det").active, 1);
    assert.deepEqual(swapped, [1]);
  });
});

Deno.test("Registry.onChange() reports added, activated and deleted after they are durable", async () => {
  const registry = await Registry.open(new MemoryStore(), { maxBytes: MAX_BYTES });
  const events: string[] = [];
  const off = registry.onChange((e) =>
    events.push(e.type === "deleted" ? `deleted ${e.version}` : `${e.type} ${e.meta.version}`)
  );
  await registry.add("det", tinyYolo({ seed: 1 }), { ...upload, activate: true });
  await registry.add("det", tinyYolo({ seed: 2 }), upload);
  await registry.activate("det", 2);
  await registry.remove("det", 1);
  off();
  await registry.activate("det", 2);
  assert.deepEqual(events, ["added 1", "activated 1", "added 2", "activated 2", "deleted 1"]);
});

Deno.test("Registry.registerFile() adds a startup file once and never overrides a persisted active version", async () => {
  await withDataDir(async (dir, open) => {
    const path = join(dir, "my-model.onnx");
    await Deno.writeFile(path, tinyYolo({ seed: 1 }));
    const first = await open();
    const r1 = await first.registerFile(path);
    assert.deepEqual([r1.meta.name, r1.meta.version, r1.added, r1.activated], ["my-model", 1, true, true]);
    assert.deepEqual(r1.meta.source, { type: "startup", path });
    const again = await (await open()).registerFile(path);
    assert.deepEqual([again.meta.version, again.added, again.activated], [1, false, false]);

    const registry = await open();
    await registry.add("my-model", tinyYolo({ seed: 2 }), { ...upload, activate: true });
    await Deno.writeFile(path, tinyYolo({ seed: 3 }));
    const changed = await (await open()).registerFile(path);
    assert.deepEqual([changed.meta.version, changed.added, changed.activated], [3, true, false]);
    assert.equal((await open()).model("my-model").active, 2, "the persisted choice wins");
  });
});

Deno.test("Registry.read() refuses a stored file that no longer matches its sha256", async () => {
  await withDataDir(async (dir, open) => {
    const registry = await open();
    await registry.add("det", tinyYolo({ seed: 1 }), upload);
    await Deno.writeFile(join(dir, "models/det/versions/1/model.onnx"), tinyYolo({ seed: 9 }));
    await assert.rejects(registry.read("det", 1), /stored file has sha256/);
  });
});

Deno.test("FsStore.load() drops staging leftovers and temp files of an interrupted write", async () => {
  await withDataDir(async (dir, open) => {
    await (await open()).add("det", tinyYolo({ seed: 1 }), { ...upload, activate: true });
    await Deno.mkdir(join(dir, "models/det/.staging/half"), { recursive: true });
    await Deno.writeFile(join(dir, "models/det/.staging/half/model.onnx"), new Uint8Array(10));
    await Deno.writeTextFile(join(dir, "models/det/active.json.tmp-1234"), '{"vers');
    const registry = await open();
    assert.deepEqual(registry.model("det").versions.map((v) => v.version), [1]);
    assert.deepEqual(Object.keys(await snapshot(join(dir, "models/det"))).sort(), [
      "/active.json",
      "/last_version.json",
      "/versions/1/meta.json",
      "/versions/1/model.onnx",
    ]);
  });
});

Deno.test("Registry.read() of a version whose file a delete already took is a not_found RegistryError", async () => {
  await withDataDir(async (dir, open) => {
    const registry = await open();
    const meta = await registry.add("m", tinyYolo({ seed: 1 }), { source: { type: "upload" } });
    // What a read sees between a delete's two steps: the meta still listed, the file gone.
    await Deno.remove(join(dir, "models", "m", "versions", String(meta.version)), { recursive: true });
    await assert.rejects(registry.read("m", meta.version), (err: Error) => {
      assert.ok(err instanceof RegistryError, String(err));
      assert.equal(err.code, "not_found");
      return true;
    });
  });
});
