import assert from "node:assert/strict";
import { join } from "node:path";
import { WorkerTrainer, type WorkerTrainerDeps } from "../../src/api/worker_trainer.ts";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { queuedJob } from "../../src/jobs/state.ts";
import type { Checkpoint, Job, TrainerContext, TrainerProgress } from "../../src/jobs/types.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const IMGSZ = 64;
const EPOCHS = 3;
const IMAGES = 6;
const BATCH = 3;

function job(): Job {
  const config = parseFinetuneConfig({
    imgsz: IMGSZ,
    batch_size: BATCH,
    epochs: EPOCHS,
    augment: false,
    val_fraction: 0,
    activate: "always",
  });
  const now = new Date().toISOString();
  const dataset = { files: 2 * IMAGES, bytes: 0 };
  const queued = queuedJob({
    id: "job-1",
    seq: 0,
    model: "tiny",
    baseVersion: 1,
    adapter: "default",
    config,
    createdAt: now,
    dataset,
  });
  return { ...queued, status: "running", startedAt: now, attempts: 1 };
}

/** A job context over temporary directories with in-memory checkpoints, recording what the worker reports. */
async function context(signal = new AbortController().signal) {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-worker-" });
  await writeSynthDataset(join(dir, "dataset"), { n: IMAGES, imgsz: IMGSZ, seed: 2 });
  await Deno.mkdir(join(dir, "work"));
  const progress: TrainerProgress[] = [];
  const saved: Checkpoint[] = [];
  const ctx: TrainerContext = {
    signal,
    onProgress: (p) => progress.push(p),
    checkpoint: { load: () => Promise.resolve(null), save: (c) => Promise.resolve(void saved.push(c)) },
    datasetDir: join(dir, "dataset"),
    workDir: join(dir, "work"),
  };
  return { dir, ctx, progress, saved, cleanup: () => Deno.remove(dir, { recursive: true }) };
}

function deps(overrides: Partial<WorkerTrainerDeps> = {}) {
  const published: { bytes: Uint8Array; evals: unknown }[] = [];
  const result = { resultVersion: 2, activated: true, metrics: { map50: 0.5 } };
  const d: WorkerTrainerDeps = {
    readModel: () => Promise.resolve(tinyYolo({ nc: 3, imgsz: IMGSZ })),
    publish: (_job, bytes, evals) => (published.push({ bytes, evals }), Promise.resolve(result)),
    ...overrides,
  };
  return { deps: d, published, result };
}

gpuTest(
  "WorkerTrainer trains a job in a worker: progress, checkpoints, outputs, and the EMA model published",
  async () => {
    const c = await context();
    const d = deps();
    try {
      const result = await new WorkerTrainer(d.deps).run(job(), c.ctx);
      assert.deepEqual(result, d.result, "the run answers what publish answered");
      assert.equal(d.published.length, 1);
      const ema = OnnxModel.parse(d.published[0].bytes);
      assert.ok(ema.graph.initializer.length > 0, "the published bytes are an ONNX model");
      const iterations = EPOCHS * Math.ceil(IMAGES / BATCH);
      assert.deepEqual(
        c.progress.map((p) => p.iteration),
        Array.from({ length: iterations }, (_, i) => i + 1),
      );
      assert.ok(c.progress.every((p) => p.iterations === iterations && p.lossItems?.every(Number.isFinite)));
      assert.deepEqual(c.saved.map((s) => s.epoch), [1, 2], "a checkpoint after every epoch but the last");
      const outputs = (await Array.fromAsync(Deno.readDir(c.ctx.workDir))).map((e) => e.name).sort();
      assert.deepEqual(outputs, ["ema.onnx", "last.onnx", "trace.jsonl"]);
    } finally {
      await c.cleanup();
    }
  },
);

gpuTest("WorkerTrainer: a cancelled run rejects with the signal's reason and publishes nothing", async () => {
  const controller = new AbortController();
  const c = await context(controller.signal);
  const d = deps();
  try {
    const reason = new DOMException("Job job-1 was cancelled", "AbortError");
    const ctx = { ...c.ctx, onProgress: () => controller.abort(reason) };
    await assert.rejects(new WorkerTrainer(d.deps).run(job(), ctx), (err) => err === reason);
    assert.deepEqual(d.published, []);
  } finally {
    await c.cleanup();
  }
});

gpuTest("WorkerTrainer: a main-thread failure (the base model) fails the run with its message", async () => {
  const c = await context();
  const d = deps({ readModel: () => Promise.reject(new Error("Model 'tiny' has no version 1")) });
  try {
    await assert.rejects(new WorkerTrainer(d.deps).run(job(), c.ctx), /Model 'tiny' has no version 1/);
  } finally {
    await c.cleanup();
  }
});

gpuTest(
  "WorkerTrainer: a cancel during publishing lets the publish finish, so its version is recorded",
  async () => {
    const controller = new AbortController();
    const c = await context(controller.signal);
    const d = deps();
    const publish = d.deps.publish;
    d.deps.publish = (job, bytes, evals) => {
      controller.abort(new DOMException("Job job-1 was cancelled", "AbortError"));
      return publish(job, bytes, evals);
    };
    try {
      assert.deepEqual(await new WorkerTrainer(d.deps).run(job(), c.ctx), d.result);
      assert.equal(d.published.length, 1);
    } finally {
      await c.cleanup();
    }
  },
);

gpuTest("WorkerTrainer: a run stopped after a checkpoint resumes from it in a new worker", async () => {
  const controller = new AbortController();
  const c = await context(controller.signal);
  const d = deps();
  try {
    const saved: Checkpoint[] = [];
    const stopAfterSave = {
      load: () => Promise.resolve(null),
      save: (checkpoint: Checkpoint) => {
        saved.push(checkpoint);
        controller.abort(new DOMException("Server shutting down", "AbortError"));
        return Promise.resolve();
      },
    };
    const first = new WorkerTrainer(d.deps).run(job(), { ...c.ctx, checkpoint: stopAfterSave });
    await assert.rejects(first, /shutting down/);
    assert.deepEqual(saved.map((s) => s.epoch), [1]);

    const resumed: TrainerProgress[] = [];
    const fromCheckpoint = { load: () => Promise.resolve(saved[0]), save: () => Promise.resolve() };
    const ctx = {
      ...c.ctx,
      signal: new AbortController().signal,
      onProgress: (p: TrainerProgress) => resumed.push(p),
      checkpoint: fromCheckpoint,
    };
    assert.deepEqual(await new WorkerTrainer(d.deps).run(job(), ctx), d.result);
    const perEpoch = Math.ceil(IMAGES / BATCH);
    assert.equal(resumed[0].iteration, perEpoch + 1, "training picks up after the checkpointed epoch");
    assert.equal(resumed.at(-1)!.iteration, EPOCHS * perEpoch);
  } finally {
    await c.cleanup();
  }
});
