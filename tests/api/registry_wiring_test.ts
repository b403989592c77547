import assert from "node:assert/strict";
import { join } from "node:path";
import { loadActiveModels, openServingRegistry } from "../../src/api/registry_wiring.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import type { RegistryError } from "../../src/registry/errors.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import type { Backend } from "../../src/serving/backend.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { onnx } from "../onnx/_models.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const CONFIG = { maxModelBytes: 64 * 1024 };

/** One server lifetime on `dataDir`: open, load, report what is served, release the sessions. */
async function boot(dataDir: string, models: string[], defaultPath: string) {
  const pool = new ModelPool(nativeBackend);
  try {
    const registry = await openServingRegistry({ ...CONFIG, dataDir }, pool);
    const served = await loadActiveModels(registry, pool, models, defaultPath);
    assert.deepEqual(served, pool.list().map((m) => m.ref));
    return { served, registry };
  } finally {
    await pool.close();
  }
}

/** Runs `fn` without the server-side log lines of refused models (their engine errors go to console.error). */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const original = console.error;
  console.error = () => {};
  try {
    return await fn();
  } finally {
    console.error = original;
  }
}

Deno.test("loadActiveModels() registers the default model only into an empty registry without --model", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-wiring-" });
  try {
    const fallback = join(dir, "default.onnx");
    const mine = join(dir, "mine.onnx");
    await Deno.writeFile(fallback, tinyYolo({ seed: 1 }));
    await Deno.writeFile(mine, tinyYolo({ seed: 2 }));
    const data = join(dir, "data");
    assert.deepEqual((await boot(data, [], fallback)).served, [{ name: "default", version: 1 }]);
    const withFlag = await boot(data, [mine], fallback);
    assert.deepEqual(withFlag.served, [{ name: "default", version: 1 }, { name: "mine", version: 1 }]);
    assert.deepEqual(withFlag.registry.model("mine").versions[0].source, { type: "startup", path: mine });
    // Without flags the registry is not empty, so the default file is not registered again.
    await Deno.writeFile(fallback, tinyYolo({ seed: 3 }));
    const restart = await boot(data, [], fallback);
    assert.deepEqual(restart.served, withFlag.served);
    assert.equal(restart.registry.model("default").versions.length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openServingRegistry() refuses an upload the backend cannot run, before storing it, without engine text", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-wiring-" });
  const pool = new ModelPool(nativeBackend);
  try {
    const registry = await openServingRegistry({ ...CONFIG, dataDir: dir }, pool);
    // Built for 64x64 but declaring a 32x32 input: inspectYolo accepts it, the warm-up run cannot reshape.
    const model = OnnxModel.parse(tinyYolo({ seed: 4, imgsz: 64 }));
    const dims = model.graph.input[0].type!.tensorType!.shape!.dim;
    dims[2].dimValue = 32;
    dims[3].dimValue = 32;
    await registry.add("ok", tinyYolo({ seed: 4 }), { source: { type: "upload" } });
    await assert.rejects(
      quietly(() => registry.add("bad", model.toBytes(), { source: { type: "upload" } })),
      (err: Error) => {
        assert.equal((err as RegistryError).code, "invalid_model");
        assert.match(err.message, /failed its warm-up run/, "rejected by the warm-up run, not by inspection");
        assert.doesNotMatch(err.message, /Reshape|onnxruntime/i, "onnxruntime's own text is only logged");
        return true;
      },
    );
    assert.deepEqual(registry.models().map((m) => m.name), ["ok"]);
  } finally {
    await pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openServingRegistry() refuses a Constant whose tensor reads deno.json as external data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-wiring-" });
  const pool = new ModelPool(nativeBackend);
  try {
    const registry = await openServingRegistry({ ...CONFIG, dataDir: dir }, pool);
    const model = OnnxModel.parse(tinyYolo({ seed: 5 }));
    const constant = model.graph.node.find((n) => n.opType === "Constant" && n.name === "two_0")!;
    const t = constant.attribute[0].t!;
    t.rawData = new Uint8Array(0);
    t.dataLocation = onnx.TensorProto.DataLocation.EXTERNAL;
    t.externalData = [{ key: "location", value: "deno.json" }, { key: "length", value: "4" }].map((e) =>
      onnx.StringStringEntryProto.create(e)
    );
    await assert.rejects(
      quietly(() => registry.add("probe", model.toBytes(), { source: { type: "upload" }, activate: true })),
      (err: Error) => {
        assert.equal((err as RegistryError).code, "invalid_model");
        assert.match(err.message, /attribute 'value' of node 'two_0' \(graph\) stores its data externally/);
        return true;
      },
    );
    assert.deepEqual(registry.models(), []);
    assert.equal(pool.get("probe"), undefined);
  } finally {
    await pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** The native backend, counting live sessions; `gate` holds session builds until it resolves. */
function countingBackend(gate?: Promise<void>) {
  const counts = { built: 0, released: 0 };
  const backend: Backend = {
    name: "native",
    async createSession(onnx, inputName, outputName) {
      await gate;
      const session = await nativeBackend.createSession(onnx, inputName, outputName);
      counts.built++;
      return {
        run: (input) => session.run(input),
        release: () => {
          counts.released++;
          return session.release();
        },
      };
    },
  };
  return { backend, counts };
}

Deno.test("openServingRegistry() refuses a model that loads past the time limit and frees the registry", async () => {
  const LOAD_LIMIT_MS = 200;
  let open = () => {};
  const gate = new Promise<void>((resolve) => open = resolve);
  const slow = countingBackend(gate);
  const pool = new ModelPool(slow.backend, undefined, LOAD_LIMIT_MS);
  const registry = await openServingRegistry({ ...CONFIG, dataDir: "unused" }, pool, new MemoryStore());
  const upload = { source: { type: "upload" as const } };
  try {
    await assert.rejects(registry.add("slow", tinyYolo({ seed: 6 }), upload), (err: Error) => {
      assert.equal((err as RegistryError).code, "invalid_model");
      assert.match(err.message, /longer than the limit of 200 ms/);
      return true;
    });
    assert.deepEqual(registry.models(), []);
    // The lock is free while the late session build still hangs: the next mutation runs (and times out too).
    await assert.rejects(registry.add("next", tinyYolo({ seed: 7 }), upload), /longer than the limit/);
    open();
    // Sessions that arrive after the deadline are released, not leaked.
    for (let i = 0; i < 100 && slow.counts.released < 2; i++) await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(slow.counts, { built: 2, released: 2 });
  } finally {
    open();
    await pool.close();
  }
});

/** A MemoryStore whose active-pointer writes fail on demand (a full disk, a read-only data dir). */
class FailingStore extends MemoryStore {
  failWrites = false;
  override setActive(name: string, version: number): Promise<void> {
    return this.failWrites ? Promise.reject(new Error("disk full")) : super.setActive(name, version);
  }
}

Deno.test("openServingRegistry() switches serving only after the active pointer is written", async () => {
  const { backend, counts } = countingBackend();
  const pool = new ModelPool(backend);
  const store = new FailingStore();
  const registry = await openServingRegistry({ ...CONFIG, dataDir: "unused" }, pool, store);
  const upload = { source: { type: "upload" as const } };
  try {
    await registry.add("det", tinyYolo({ seed: 8 }), { ...upload, activate: true });
    await registry.add("det", tinyYolo({ seed: 9 }), upload);
    store.failWrites = true;
    await assert.rejects(registry.activate("det", 2), /disk full/);
    await assert.rejects(
      registry.add("det", tinyYolo({ seed: 10 }), { ...upload, activate: true }),
      /disk full/,
    );
    assert.equal(pool.get("det")!.ref.version, 1, "serving stays on v1");
    assert.equal(registry.model("det").active, 1, "the registry agrees");
    assert.equal((await store.load()).get("det")!.active, 1);
    assert.deepEqual(registry.model("det").versions.map((v) => v.version), [1, 2]);
    // Each refused activation built and warmed a session (plus verify's), and freed all but v1's.
    assert.equal(counts.built - counts.released, 1);
    store.failWrites = false;
    await registry.activate("det", 2);
    assert.equal(pool.get("det")!.ref.version, 2);
  } finally {
    await pool.close();
  }
});
