// --serve-budget-ms: the p95 of recent detect latencies decides whether training waits; too little traffic never
// pauses it, slow samples leaving the window end a pause, and a training worker really stops between steps while
// the flag is up and finishes its job once it drops.
import assert from "node:assert/strict";
import { join } from "node:path";
import { SERVE_BUDGET_MIN_SAMPLES, SERVE_BUDGET_WINDOW_MS, ServeBudget } from "../../src/api/serve_budget.ts";
import { WorkerTrainer } from "../../src/api/worker_trainer.ts";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import type { Job, TrainerProgress } from "../../src/jobs/types.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const BUDGET_MS = 100;
/** How long the paused worker is watched for a step it must not take. */
const WATCH_MS = 3000;

function clocked() {
  let t = 0;
  const budget = new ServeBudget(BUDGET_MS, () => t);
  return { budget, advance: (ms: number) => (t += ms) };
}

Deno.test("serve budget: pauses only on the p95 of enough recent samples, and a pause ends as they age out", () => {
  const { budget, advance } = clocked();
  for (let i = 0; i < SERVE_BUDGET_MIN_SAMPLES - 1; i++) budget.observe(5 * BUDGET_MS);
  assert.equal(budget.paused, false, "too few samples to judge");
  budget.observe(5 * BUDGET_MS);
  assert.deepEqual([budget.paused, Atomics.load(budget.flag, 0), budget.pauses], [true, 1, 1]);

  advance(SERVE_BUDGET_WINDOW_MS + 1);
  budget.update();
  assert.equal(budget.paused, false, "the slow samples left the window");

  // 20 samples: the p95 is the 19th smallest, so one slow request in 20 does not pause, two do.
  for (let i = 0; i < 19; i++) budget.observe(BUDGET_MS / 2);
  budget.observe(10 * BUDGET_MS);
  assert.equal(budget.paused, false);
  budget.observe(10 * BUDGET_MS);
  assert.deepEqual([budget.paused, budget.pauses], [true, 2]);
  budget.stop();
  assert.equal(budget.paused, false, "stop releases the trainer");
});

/** Two epochs of a tiny model on 4 synthetic images, two per batch: 4 steps. */
function job(): Job {
  const config = parseFinetuneConfig({
    imgsz: 64,
    batch_size: 2,
    epochs: 2,
    augment: false,
    val_fraction: 0,
    activate: "always",
  });
  return { id: "job-1", model: "tiny", baseVersion: 1, adapter: "default", config } as unknown as Job;
}

gpuTest(
  "serve budget: a training worker waits between steps while the flag is up, then finishes",
  async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-serve-budget-" });
    const budget = new ServeBudget(BUDGET_MS);
    try {
      await writeSynthDataset(join(dir, "dataset"), { n: 4, imgsz: 64, seed: 1 });
      await Deno.mkdir(join(dir, "work"));
      const progress: TrainerProgress[] = [];
      const first = Promise.withResolvers<void>();
      Atomics.store(budget.flag, 0, 1); // detect is slow from the start
      const trainer = new WorkerTrainer({
        readModel: () => Promise.resolve(tinyYolo({ nc: 3, imgsz: 64 })),
        publish: () => Promise.resolve({ resultVersion: 2, activated: true, metrics: {} }),
        pause: budget.flag,
      });
      const run = trainer.run(job(), {
        signal: new AbortController().signal,
        onProgress: (p) => (progress.push(p), first.resolve()),
        checkpoint: { load: () => Promise.resolve(null), save: () => Promise.resolve() },
        datasetDir: join(dir, "dataset"),
        workDir: join(dir, "work"),
      });
      await first.promise;
      await new Promise((r) => setTimeout(r, WATCH_MS));
      assert.equal(progress.length, 1, "no step while paused");
      const released = performance.now();
      budget.stop(); // detect recovered
      await run;
      assert.deepEqual(progress.map((p) => p.iteration), [1, 2, 3, 4]);
      // The watch means something only if an unpaused step is faster than it (the rest of the run, export
      // included, over its three steps bounds a step from above).
      const perStep = (performance.now() - released) / 3;
      assert.ok(
        perStep < WATCH_MS,
        `a step took ${perStep.toFixed(0)} ms, longer than the ${WATCH_MS} ms watched`,
      );
    } finally {
      budget.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
);
