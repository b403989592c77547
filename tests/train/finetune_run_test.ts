// runFinetune's plumbing: a run interrupted after an epoch checkpoint, or suspended mid-epoch, resumes from its
// checkpoint with a whole trace and the same result as an uninterrupted run; a scenario's images_in_order must
// match the dataset.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import {
  type Checkpoint,
  type CheckpointStore,
  finetuneDataset,
  runFinetune,
  type RunOptions,
} from "../../src/train/finetune_run.ts";
import { epochStart } from "../../src/train/loop.ts";
import { DatasetError } from "../../src/train/data/problems.ts";
import { synthDir, testGpu, tinyConfig, tinyModel } from "./_finetune.ts";

const data = await synthDir(6, 64, 5);
globalThis.addEventListener("unload", () => Deno.removeSync(data, { recursive: true }));
const config = tinyConfig({ batch_size: 2, epochs: 3 });

class MemoryCheckpoints implements CheckpointStore {
  saved: Checkpoint | null = null;
  load = () => Promise.resolve(this.saved);
  save(c: Checkpoint) {
    this.saved = c;
    return Promise.resolve();
  }
}

gpuTest(
  "an interrupted run resumes from its last epoch checkpoint: whole trace, same EMA model",
  async (device) => {
    const out = await Deno.makeTempDir({ prefix: "kestrel-run-" });
    try {
      const base = { gpu: testGpu(device), config, dataDir: data };
      const whole = await runFinetune({ ...base, model: tinyModel(), outDir: `${out}/whole` });

      const checkpoints = new MemoryCheckpoints();
      const stop = new AbortController();
      const interrupted = runFinetune({
        ...base,
        model: tinyModel(),
        outDir: `${out}/job`,
        checkpoint: checkpoints,
        signal: stop.signal,
        onIteration: ({ line }) => {
          if (line.epoch === 2 && line.i === 0) stop.abort(new Error("server stopped"));
        },
      });
      await assert.rejects(interrupted, /server stopped/);
      assert.equal(checkpoints.saved?.epoch, 2);

      const resumed = await runFinetune({
        ...base,
        model: tinyModel(),
        outDir: `${out}/job`,
        checkpoint: checkpoints,
      });
      assert.deepEqual(resumed.resumedFrom, epochStart(2));
      assert.deepEqual(resumed.trace, whole.trace);
      const lines = (await Deno.readTextFile(`${out}/job/trace.jsonl`)).trim().split("\n").map((l) =>
        JSON.parse(l)
      );
      assert.deepEqual(lines, whole.trace);
      assert.deepEqual(resumed.emaBytes, whole.emaBytes);
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
);

/** The trace.jsonl a run left in `dir`. */
async function traceFile(dir: string) {
  return (await Deno.readTextFile(`${dir}/trace.jsonl`)).trim().split("\n").map((l) => JSON.parse(l));
}

// Shuffled, augmented batches (mosaic, mixup, perspective, HSV, flips: one random stream per epoch) in batches of
// 2 over 10 images: nb = 5, and warmup accumulates up to 4 batches per optimizer step.
const augmented = tinyConfig({ batch_size: 2, epochs: 2, augment: true, shuffle: true, seed: 5 });
const augmentedData = await synthDir(10, 64, 9);
globalThis.addEventListener("unload", () => Deno.removeSync(augmentedData, { recursive: true }));

gpuTest(
  "suspended mid-epoch twice and at the end, a run resumes where it was: same trace lines once each, weights, EMA",
  async (device) => {
    const out = await Deno.makeTempDir({ prefix: "kestrel-run-" });
    try {
      const base = { gpu: testGpu(device), config: augmented, dataDir: augmentedData };
      const whole = await runFinetune({ ...base, model: tinyModel(), outDir: `${out}/whole` });
      const nb = 5;
      assert.equal(whole.trace.length, 2 * nb);
      const checkpoints = new MemoryCheckpoints();
      /** One attempt, suspended once it has trained iteration `ni` (of the whole run). */
      const attempt = (ni: number | null, extra: Partial<RunOptions> = {}) => {
        const suspend = new AbortController();
        return runFinetune({
          ...base,
          model: tinyModel(),
          outDir: `${out}/job`,
          checkpoint: checkpoints,
          suspend: suspend.signal,
          onIteration: ({ line }) => {
            if (line.ni === ni) suspend.abort(new Error(`suspended after ni ${ni}`));
          },
          ...extra,
        });
      };
      // ni 1 is in epoch 0; ni 6 in epoch 1, where the resumed attempt goes on from ni 2 (a mid-epoch start).
      await assert.rejects(attempt(1), /suspended after ni 1/);
      assert.deepEqual([checkpoints.saved?.epoch, checkpoints.saved?.iteration], [0, 2]);
      await assert.rejects(attempt(6), /suspended after ni 6/);
      assert.deepEqual([checkpoints.saved?.epoch, checkpoints.saved?.iteration], [1, 2]);
      // A later attempt may have written trace lines past its checkpoint before it was killed: they go.
      await Deno.writeTextFile(`${out}/job/trace.jsonl`, JSON.stringify(whole.trace[9]) + "\n", {
        append: true,
      });
      // Suspended once the last epoch ended: what is saved is the end of training.
      const lastEpochEnd = new AbortController();
      await assert.rejects(
        attempt(null, {
          suspend: lastEpochEnd.signal,
          log: (message) => {
            if (message.startsWith("epoch 2/2")) lastEpochEnd.abort(new Error("suspended at the end"));
          },
        }),
        /suspended at the end/,
      );
      assert.deepEqual([checkpoints.saved?.epoch, checkpoints.saved?.iteration], [2, 0]);
      const resumed = await attempt(null);
      assert.deepEqual(resumed.resumedFrom, epochStart(2));
      assert.deepEqual(resumed.trace, whole.trace);
      assert.deepEqual(await traceFile(`${out}/job`), whole.trace);
      assert.deepEqual(resumed.emaBytes, whole.emaBytes);
      assert.deepEqual(
        await Deno.readFile(`${out}/job/last.onnx`),
        await Deno.readFile(`${out}/whole/last.onnx`),
      );
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
);

Deno.test("images_in_order must name the dataset's images in sorted order", async () => {
  const names = [...Deno.readDirSync(`${data}/images`)].map((e) => `images/${e.name}`).sort();
  const ok = await finetuneDataset(data, 3, { ...config, images_in_order: names });
  assert.deepEqual(ok.train.map((s) => s.name), names);
  assert.equal(ok.val.length, 0, "a scenario's images are all trained on");
  await assert.rejects(
    finetuneDataset(data, 3, { ...config, images_in_order: names.slice(1) }),
    (err) => err instanceof DatasetError && /images_in_order/.test(err.message),
  );
});
