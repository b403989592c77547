import assert from "node:assert/strict";
import sharp from "sharp";
import { createApp } from "../../src/api/app.ts";
import { OPENAPI_PATH } from "../../src/api/routes/docs.ts";
import { FINETUNE_LIMITS } from "../../src/config/finetune.ts";
import { JobService } from "../../src/jobs/service.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { defaultTrainingMemoryBytes, estimateTrainingMemory } from "../../src/train/training_memory.ts";
import { parseServerArgs } from "../../src/config/server.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const MODEL = tinyYolo({ seed: 1 });
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };

/** The app with a tiny active model and a trainer double; `maxTrainMemoryBytes` as given. */
async function withApp(
  maxTrainMemoryBytes: number | undefined,
  fn: (
    s: { post: (config: unknown) => Promise<Response>; jobs: JobService; app: ReturnType<typeof createApp> },
  ) => Promise<void>,
) {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-finetune-limits-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 1 << 20 });
  registry.setActivator((meta, bytes) => pool.prepare(meta.name, meta.version, bytes));
  await registry.add("tiny", MODEL, { source: { type: "upload" }, activate: true });
  const jobs = await JobService.open({ dataDir, trainer: new TestTrainer(), log: () => {} });
  const app = createApp({ pool, registry, jobs, maxTrainMemoryBytes });
  const image = new Uint8Array(
    await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 40, g: 90, b: 160 } } })
      .png().toBuffer(),
  );
  const images = [{ name: "a.png", data: image.toBase64(), labels: [[0, 0.5, 0.5, 0.2, 0.3]] }];
  const post = async (config: unknown) =>
    await app.request("/v1/models/tiny/finetune", {
      method: "POST",
      body: JSON.stringify({ config, images }),
      headers: { "content-type": "application/json" },
    }, LOOPBACK);
  try {
    await fn({ post, jobs, app });
  } finally {
    await jobs.close();
    await pool.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function expectInvalidConfig(res: Response, message: RegExp) {
  const body = await res.json();
  assert.equal(res.status, 400, JSON.stringify(body));
  assert.equal(body.error.code, "invalid_config");
  assert.match(body.error.message, message);
}

Deno.test({
  name: "POST finetune refuses imgsz, batch_size and epochs over their bounds with 400 invalid_config",
  sanitizeResources: false,
  fn: () =>
    withApp(undefined, async ({ post, jobs }) => {
      await expectInvalidConfig(await post({ imgsz: 100_000 }), /imgsz is at most 1280/);
      await expectInvalidConfig(await post({ batch_size: 100_000 }), /batch_size is at most 256/);
      await expectInvalidConfig(await post({ epochs: 1e9 }), /epochs is at most 3000/);
      await expectInvalidConfig(await post({ freeze: [1e6] }), /layer is at most 1000/);
      assert.deepEqual(jobs.list(), []);
    }),
});

Deno.test({
  name: "POST finetune refuses a job whose estimated memory is over --max-train-memory, naming it",
  sanitizeResources: false,
  fn: async () => {
    const model = OnnxModel.parse(MODEL);
    const budget = estimateTrainingMemory(model, 2, 64)!.totalBytes;
    assert.ok(estimateTrainingMemory(model, 4, 64)!.totalBytes > budget, "more images need more memory");
    await withApp(budget, async ({ post, jobs }) => {
      await expectInvalidConfig(
        await post({ batch_size: 4, imgsz: 64, epochs: 1 }),
        new RegExp(`limit of ${Math.ceil(budget / 2 ** 20)} MiB \\(--max-train-memory\\)`),
      );
      assert.deepEqual(jobs.list(), []);
      const accepted = await post({ batch_size: 2, imgsz: 64, epochs: 1 });
      assert.equal(accepted.status, 202, await accepted.clone().text());
    });
  },
});

Deno.test({
  name: "the OpenAPI document shows the fine-tune config with its upper bounds",
  sanitizeResources: false,
  fn: () =>
    withApp(undefined, async ({ app }) => {
      const doc = await (await app.request(OPENAPI_PATH)).json();
      const props = doc.components.schemas.FinetuneConfig.properties;
      for (const key of ["imgsz", "batch_size", "epochs", "nbs", "seed"] as const) {
        assert.equal(props[key].maximum, FINETUNE_LIMITS[key], key);
      }
      const inline = doc.components.schemas.FinetuneInline.properties.config;
      assert.deepEqual(inline.allOf, [{ $ref: "#/components/schemas/FinetuneConfig" }]);
    }),
});

Deno.test("--max-train-memory sets the training memory budget (default: the machine's memory)", () => {
  assert.equal(parseServerArgs([]).maxTrainMemoryBytes, undefined);
  assert.equal(defaultTrainingMemoryBytes(), Deno.systemMemoryInfo().total);
  assert.equal(parseServerArgs(["--max-train-memory", "5000000"]).maxTrainMemoryBytes, 5_000_000);
  assert.throws(() => parseServerArgs(["--max-train-memory", "0"]), /maxTrainMemoryBytes/);
});
