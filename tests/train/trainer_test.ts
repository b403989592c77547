// The real Trainer behind JobService (issue 6): a fine-tune job on synthesised shapes trains on the GPU, evaluates the
// base and the EMA model on held-out synthesised images, and publishes the EMA weights as a new registry version
// (activated by the default if_better policy) whose metrics show that it learned something.
//
// It starts from the embedded default model (models/default.onnx, BatchNorm unfused, trained on shapes 12-40% of
// the image side) and teaches it a domain it is weak on: shapes 40-70% of the side, which it never saw. Its data
// seeds (11 train, 12 held out) differ from the default model's (1, 2, 3), so nothing it memorised is scored.
// Nothing is derived from the default model's own mAP: the assertion is on the rise, base and EMA both measured
// here.
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_helpers/gpu.ts";
import { DEFAULT_MODEL_PATH } from "../../src/config/server.ts";
import { JobService } from "../../src/jobs/service.ts";
import type { Job, Trainer } from "../../src/jobs/types.ts";
import { publishResult } from "../../src/jobs/publish.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { WgslTrainer } from "../../src/train/trainer.ts";
import { testGpu } from "./_finetune.ts";

const IMGSZ = 128;
const TRAIN_IMAGES = 48, VAL_IMAGES = 32;
const SHAPES = { minSize: 0.4, maxSize: 0.7 };
const EPOCHS = 3, BATCH = 8;
/**
 * 18 iterations all fall inside YOLOv5's warmup (at least 100 iterations), where the weights' learning rate ramps
 * linearly from 0 to lr0; lr0 0.1 lets it reach 0.018 by the end. Measured with this job (lavapipe): lr0 0.01 rose
 * mAP@0.5 by 0.09, 0.05 by 0.27, 0.1 by 0.30 (data seeds 101/201, from an earlier, less trained default model).
 */
const LR0 = 0.1;
/**
 * The EMA model's held-out mAP@0.5 must beat the base model's by at least this much. Measured with this job on
 * lavapipe from the committed default model (held-out mAP@0.5 0.968 on its own shapes), train/val data seeds
 * 11/12 (this test), 101/201, 102/202, 103/203, base -> EMA: 0.795 -> 0.939, 0.590 -> 0.955, 0.689 -> 0.936,
 * 0.716 -> 0.876; rises 0.14 to 0.37. About half the smallest rise: seed-to-seed and float-order differences keep
 * passing, while a trainer that stops teaching (rise near 0 or negative) fails.
 */
const MIN_MAP50_RISE = 0.065;

gpuTest(
  "a fine-tune job from the default model raises held-out mAP@0.5 and publishes the EMA as a version activated if better",
  async (device) => {
    const dataDir = await Deno.makeTempDir({ prefix: "kestrel-trainer-" });
    try {
      const registry = await Registry.open(new MemoryStore(), { maxBytes: 64 << 20 });
      const base = await Deno.readFile(DEFAULT_MODEL_PATH);
      await registry.add("default", base, { source: { type: "upload" }, activate: true });
      // The job's work files are deleted once it ends: they are looked at while it publishes.
      let outputs: { files: string[]; ema: Uint8Array } | null = null;
      const trainer: Trainer = new WgslTrainer<Job>({
        gpu: () => Promise.resolve(testGpu(device)),
        readModel: (job) => registry.read(job.model, job.baseVersion ?? registry.model(job.model).active!),
        publish: async (job, bytes, evals) => {
          const workDir = join(dataDir, "jobs", job.id, "work");
          outputs = {
            files: [...Deno.readDirSync(workDir)].map((e) => e.name).sort(),
            ema: await Deno.readFile(join(workDir, "ema.onnx")),
          };
          return await publishResult(registry, job, bytes, evals);
        },
      });
      const service = await JobService.open({ dataDir, trainer, log: () => {} });
      const progress: number[] = [];
      service.subscribe((e) => {
        if (e.type === "progress") progress.push(e.job.progress.iteration);
      });
      const job = await service.submit({
        model: "default",
        baseVersion: 1,
        config: {
          imgsz: IMGSZ,
          batch_size: BATCH,
          nbs: BATCH,
          epochs: EPOCHS,
          augment: false,
          hyp: { lr0: LR0 },
        },
        dataset: async (dir) => {
          await writeSynthDataset(dir, { n: TRAIN_IMAGES, imgsz: IMGSZ, seed: 11, ...SHAPES });
          await writeSynthDataset(join(dir, "val"), { n: VAL_IMAGES, imgsz: IMGSZ, seed: 12, ...SHAPES });
        },
      });
      await service.idle();
      const done = service.get(job.id);
      assert.equal(done.status, "succeeded", JSON.stringify(done.error));
      const m = done.progress.metrics!;
      console.log(
        `held-out mAP@0.5: base ${m.base_map50}, EMA ${m.map50}; ${done.progress.imagesPerSecond} img/s`,
      );
      assert.ok(m.map50 - m.base_map50 >= MIN_MAP50_RISE, `mAP@0.5 ${m.base_map50} -> ${m.map50}`);

      const iterations = EPOCHS * Math.ceil(TRAIN_IMAGES / BATCH);
      assert.equal(done.progress.iterations, iterations);
      assert.equal(progress.at(-1), iterations);
      assert.ok(done.progress.imagesPerSecond! > 0);
      const version = registry.version("default", done.resultVersion!);
      assert.deepEqual([version.parent, version.source, version.metrics], [1, {
        type: "finetune",
        job_id: job.id,
      }, m]);
      // if_better (the default policy) serves the result only when mAP@0.5:0.95 did not drop.
      const better = m.map50_95 >= m.base_map50_95;
      assert.equal(registry.model("default").active, better ? done.resultVersion : 1);
      const published = outputs as { files: string[]; ema: Uint8Array } | null;
      assert.deepEqual(published?.files, ["ema.onnx", "last.onnx", "trace.jsonl"]);
      assert.deepEqual(await registry.read("default", done.resultVersion!), published?.ema);
      assert.deepEqual([...Deno.readDirSync(join(dataDir, "jobs", job.id))].map((e) => e.name), ["job.json"]);
      await service.close();
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
