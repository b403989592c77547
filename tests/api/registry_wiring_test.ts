import assert from "node:assert/strict";
import { join } from "node:path";
import { loadActiveModels, openServingRegistry } from "../../src/api/registry_wiring.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import type { RegistryError } from "../../src/registry/errors.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
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

Deno.test("openServingRegistry() refuses an upload the backend cannot run, before storing it", async () => {
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
      registry.add("bad", model.toBytes(), { source: { type: "upload" } }),
      (err: Error) => {
        assert.equal((err as RegistryError).code, "invalid_model");
        assert.match(err.message, /Reshape/, "rejected by the warm-up run, not by inspection");
        return true;
      },
    );
    assert.deepEqual(registry.models().map((m) => m.name), ["ok"]);
  } finally {
    await pool.close();
    await Deno.remove(dir, { recursive: true });
  }
});
