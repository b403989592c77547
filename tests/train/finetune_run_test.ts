// runFinetune's plumbing: a run interrupted after an epoch checkpoint resumes from it with a whole trace and the
// same result as an uninterrupted run; a scenario's images_in_order must match the dataset.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { type CheckpointStore, finetuneDataset, runFinetune } from "../../src/train/finetune_run.ts";
import { DatasetError } from "../../src/train/data/problems.ts";
import { synthDir, testGpu, tinyConfig, tinyModel } from "./_finetune.ts";

const data = await synthDir(6, 64, 5);
globalThis.addEventListener("unload", () => Deno.removeSync(data, { recursive: true }));
const config = tinyConfig({ batch_size: 2, epochs: 3 });

class MemoryCheckpoints implements CheckpointStore {
  saved: { epoch: number; state: Uint8Array } | null = null;
  load = () => Promise.resolve(this.saved);
  save(c: { epoch: number; state: Uint8Array }) {
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
      assert.equal(resumed.resumedFromEpoch, 2);
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
