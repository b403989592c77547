// The frozen-feature cache (issue 6's fast adaptation): with layers 0-9 frozen and augmentation off, training from
// cached backbone outputs must be the same training as running the whole forward every step, only cheaper.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import type { TraceLine } from "../../src/optim/trace.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { FinetuneSession } from "../../src/train/finetune.ts";
import { CacheUnavailableError } from "../../src/train/frozen_cache.ts";
import { TrainProgram } from "../../src/train/program.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { GOLDEN_FILES, relL2, YOLOV5N } from "./_golden.ts";
import { referenceData } from "../_helpers/reference.ts";
import { synthDir, testGpu, tinyConfig } from "./_finetune.ts";

const REFERENCE = referenceData(import.meta.url, ...GOLDEN_FILES);
const IMGSZ = 64;
// 7 images in batches of 3 (a short last batch), shuffled, so cached features are looked up per image, not by slot.
const dir = await synthDir(7, IMGSZ, 3);
const dataset = await loadDataset(dir, { nc: 80 });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
// The COCO-trained yolov5n: a fresh model's fused, BN-less init shrinks activations layer by layer (the backbone
// outputs of new-model are ~1e-2 to 1e-7), so its heads would hardly notice wrong features; these do.
// Read only where the reference data is there: every test below is skipped otherwise.
let model!: OnnxModel;
if (!REFERENCE.missing) model = OnnxModel.parse(await Deno.readFile(YOLOV5N));
const config = tinyConfig({ imgsz: IMGSZ, epochs: 2, freeze: 10, shuffle: true, hyp: { lr0: 0.05 } });
/**
 * Same kernels on the same inputs; the cached run only moves where the backbone's outputs come from, so anything
 * beyond float32 summation noise (as in program_test.ts) is a bug.
 */
const SAME_RTOL = 1e-5;

async function run(device: GPUDevice, frozenCache: boolean, amp = false) {
  const session = await FinetuneSession.create({
    // amp: lavapipe has shader-f16, and an explicit amp: true uses it.
    gpu: { ...testGpu(device), hasF16: amp },
    model,
    config: { ...config, amp },
    train: dataset.train,
    frozenCache,
  });
  const read = (b: GPUBuffer) => readF32(device, b, session.layout.size);
  const initial = await read(session.params);
  const trace: TraceLine[] = [];
  await session.train({ onIteration: ({ line }) => trace.push(line) });
  // Changes, not values: the frozen weights would dominate a comparison of the values.
  const change = (after: Float32Array) => after.map((v, i) => v - initial[i]);
  return {
    session,
    trace,
    params: change(await read(session.params)),
    ema: change(await read(session.emaParams)),
  };
}

for (const amp of [false, true]) {
  gpuTest(
    `training from cached frozen features matches running the whole forward every step${amp ? " (amp)" : ""}`,
    async (device) => {
      const full = await run(device, false, amp);
      const cached = await run(device, true, amp);
      assert.equal(cached.session.cached, true);
      assert.equal(cached.trace.length, full.trace.length);
      cached.trace.forEach((line, k) => {
        const want = full.trace[k];
        assert.deepEqual([line.accumulate, line.stepped, line.lr], [want.accumulate, want.stepped, want.lr]);
        const err = relL2(line.loss_items, want.loss_items);
        assert.ok(err < SAME_RTOL, `ni ${k}: loss items ${line.loss_items} vs ${want.loss_items}`);
      });
      assert.ok(relL2(cached.params, full.params) < SAME_RTOL, "final weights");
      assert.ok(relL2(cached.ema, full.ema) < SAME_RTOL, "EMA");
    },
    REFERENCE,
  );
}

gpuTest(
  "the cache keeps only the boundary tensors, once per image, and steps skip the frozen forward",
  async (device) => {
    const options = { batch: 3, imgsz: IMGSZ, freeze: 10, hyp: config.hyp };
    const program = await TrainProgram.createCached(device, model, options, { samples: dataset.train });
    const cache = program.cache!;
    // yolov5 P5 with layers 0-9 frozen: the neck reads layer 4 (P3), layer 6 (P4) and layer 9 (SPPF) outputs
    assert.equal(cache.boundaries.length, 3);
    const perImage = cache.boundaries.reduce((s, b) => s + b.size, 0);
    assert.equal(cache.bytes, perImage * 4 * dataset.train.length);
    const whole = TrainProgram.create(device, model, options);
    const wholeStep = whole.forwardDispatches.length + whole.lossDispatches.length +
      whole.backwardDispatches.length;
    assert.equal(whole.stepDispatches.length, wholeStep);
    assert.ok(program.prefixDispatches.length > 0);
    assert.equal(program.stepDispatches.length, wholeStep - program.prefixDispatches.length);
  },
  REFERENCE,
);

gpuTest(
  "an automatic cache gives way to the whole forward when the features exceed the budget",
  async (device) => {
    const options = { gpu: testGpu(device), model, config, train: dataset.train, cacheBudgetBytes: 1024 };
    const auto = await FinetuneSession.create(options);
    assert.equal(auto.cached, false);
    await assert.rejects(FinetuneSession.create({ ...options, frozenCache: true }), CacheUnavailableError);
    assert.equal((await FinetuneSession.create({ ...options, cacheBudgetBytes: undefined })).cached, true);
  },
  REFERENCE,
);
