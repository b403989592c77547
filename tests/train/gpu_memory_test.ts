// A finished job frees its GPU memory deterministically (issue 13): fine-tune jobs one after another (evaluation,
// export, every other one from cached frozen features, one cancelled) leave the live GPU bytes where they were.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { liveGpuBytes } from "../../src/gpu/memory.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { FinetuneSession } from "../../src/train/finetune.ts";
import { CacheUnavailableError } from "../../src/train/frozen_cache.ts";
import { runFinetune } from "../../src/train/finetune_run.ts";
import { synthDir, testGpu, tinyConfig } from "./_finetune.ts";
import { tinyModel } from "./_tiny_model.ts";

const IMGSZ = 64;
const JOBS = 20;
const data = await synthDir(6, IMGSZ, 7);
globalThis.addEventListener("unload", () => Deno.removeSync(data, { recursive: true }));

gpuTest(`${JOBS} fine-tune jobs in a row give all their GPU memory back`, async (device) => {
  const out = await Deno.makeTempDir({ prefix: "kestrel-memory-" });
  try {
    const baseline = liveGpuBytes();
    for (let k = 0; k < JOBS; k++) {
      const cached = k % 2 === 1;
      const cancel = k === JOBS - 1;
      const stop = new AbortController();
      let during = 0;
      const job = runFinetune({
        gpu: testGpu(device),
        model: tinyModel(3, IMGSZ),
        config: tinyConfig({
          imgsz: IMGSZ,
          batch_size: 2,
          epochs: 2,
          val_fraction: 0.34,
          freeze: cached ? 2 : 0,
        }),
        dataDir: data,
        outDir: `${out}/${k}`,
        signal: stop.signal,
        onIteration: ({ line }) => {
          during = liveGpuBytes();
          if (cancel && line.epoch === 1) stop.abort(new Error("cancelled"));
        },
      });
      if (cancel) {
        await assert.rejects(job, /cancelled/);
      } else {
        assert.equal((await job).cacheSeconds !== null, cached, `job ${k}: cached`);
      }
      assert.ok(during > baseline, `job ${k} held no GPU memory while training`);
      assert.equal(liveGpuBytes(), baseline, `job ${k} left ${liveGpuBytes() - baseline} GPU bytes behind`);
    }
  } finally {
    await Deno.remove(out, { recursive: true });
  }
});

gpuTest("a training session that cannot be created leaves no GPU memory behind", async (device) => {
  const baseline = liveGpuBytes();
  const { train } = await loadDataset(data, { nc: 3 });
  const session = FinetuneSession.create({
    gpu: testGpu(device),
    model: tinyModel(3, IMGSZ),
    config: tinyConfig({ imgsz: IMGSZ, freeze: 2 }),
    train,
    frozenCache: true,
    cacheBudgetBytes: 16,
  });
  await assert.rejects(session, CacheUnavailableError);
  assert.equal(liveGpuBytes(), baseline);
});
