// The real Trainer behind JobService (issue 6): a fine-tune job on synthesised shapes trains on the GPU, evaluates the
// base and the EMA model on held-out synthesised images, and publishes the EMA weights as a new registry version
// (activated by the default if_better policy) whose metrics show that it learned something.
//
// It starts from the COCO-trained yolov5n (as class ids 0-2) with its backbone frozen and cached, the fast-adaptation
// path, not from a fresh new-model: a fused export has no BatchNorm, so a fresh model's PyTorch-default init
// shrinks activations layer by layer (backbone outputs ~1e-2 down to 1e-7) and it barely learns in a test's
// budget. Measured here (lavapipe, 2 busy cores): new-model at 128, all layers, Adam lr 0.01, 60 iterations:
// held-out mAP@0.5 0.004 -> 0.009 in 475 s; this job: 0.146 -> 0.744 in 69 s.
import assert from "node:assert/strict";
import { join } from "node:path";
import { gpuTest } from "../_helpers/gpu.ts";
import { JobService } from "../../src/jobs/service.ts";
import type { Job, Trainer } from "../../src/jobs/types.ts";
import { publishResult } from "../../src/jobs/publish.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { WgslTrainer } from "../../src/train/trainer.ts";
import { testGpu } from "./_finetune.ts";
import { YOLOV5N } from "./_golden.ts";

const IMGSZ = 128;
const TRAIN_IMAGES = 48, VAL_IMAGES = 16;
/**
 * The EMA model's held-out mAP@0.5 must beat the base model's by at least this much. Measured with this exact job
 * (fixed seeds: deterministic up to float summation order): 0.146 -> 0.744, a rise of 0.60; half of it leaves
 * room for adapter-to-adapter float differences and fails only if training stops teaching.
 */
const MIN_MAP50_RISE = 0.3;
const EPOCHS = 5, BATCH = 8;

gpuTest(
  "a fine-tune job raises held-out mAP@0.5 and publishes the EMA as the active version",
  async (device) => {
    const dataDir = await Deno.makeTempDir({ prefix: "kestrel-trainer-" });
    try {
      const registry = await Registry.open(new MemoryStore(), { maxBytes: 64 << 20 });
      const base = await Deno.readFile(YOLOV5N);
      await registry.add("yolov5n", base, { source: { type: "upload" }, activate: true });
      const trainer: Trainer = new WgslTrainer<Job>({
        gpu: () => Promise.resolve(testGpu(device)),
        readModel: (job) => registry.read(job.model, job.baseVersion ?? registry.model(job.model).active!),
        publish: (job, bytes, evals) => publishResult(registry, job, bytes, evals),
      });
      const service = await JobService.open({ dataDir, trainer, log: () => {} });
      const progress: number[] = [];
      service.subscribe((e) => {
        if (e.type === "progress") progress.push(e.job.progress.iteration);
      });
      const job = await service.submit({
        model: "yolov5n",
        baseVersion: 1,
        config: { imgsz: IMGSZ, batch_size: BATCH, nbs: BATCH, epochs: EPOCHS, freeze: 10, augment: false },
        dataset: async (dir) => {
          await writeSynthDataset(dir, { n: TRAIN_IMAGES, imgsz: IMGSZ, seed: 1 });
          await writeSynthDataset(join(dir, "val"), { n: VAL_IMAGES, imgsz: IMGSZ, seed: 2 });
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
      const version = registry.version("yolov5n", done.resultVersion!);
      assert.deepEqual([version.parent, version.source, version.metrics], [1, {
        type: "finetune",
        job_id: job.id,
      }, m]);
      assert.equal(registry.model("yolov5n").active, done.resultVersion);
      const workDir = join(dataDir, "jobs", job.id, "work");
      const files = [...Deno.readDirSync(workDir)].map((e) => e.name).sort();
      assert.deepEqual(files, ["ema.onnx", "last.onnx", "trace.jsonl"]);
      assert.deepEqual(
        await registry.read("yolov5n", done.resultVersion!),
        await Deno.readFile(join(workDir, "ema.onnx")),
      );
      await service.close();
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
