// An epoch's short last batch on a program of its own size (issue 18, time to an adapted model): the same training
// as the main program's padded step, for the work of its real images only.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import type { Dispatch } from "../../src/ops/types.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { type Batch, BatchLoader } from "../../src/train/data/loader.ts";
import { FinetuneSession } from "../../src/train/finetune.ts";
import type { LossItems } from "../../src/train/loss.ts";
import { TrainProgram } from "../../src/train/program.ts";
import { shortBatchSize, type SizedProgram, SizedSteps } from "../../src/train/short_batch.ts";
import { referenceData } from "../_helpers/reference.ts";
import { synthDir, testGpu, tinyConfig } from "./_finetune.ts";
import { GOLDEN_FILES, relL2, YOLOV5N } from "./_golden.ts";

const REFERENCE = referenceData(import.meta.url, ...GOLDEN_FILES);
const IMGSZ = 64, BATCH = 3;
// 7 images in batches of 3: every epoch ends with a batch of 1.
const dir = await synthDir(7, IMGSZ, 3);
const dataset = await loadDataset(dir, { nc: 80 });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
// The COCO-trained yolov5n (as frozen_cache_test.ts: its backbone features are far from zero, so a wrong restore
// shows in the gradients). Read only where the reference data is there.
let model!: OnnxModel;
if (!REFERENCE.missing) model = OnnxModel.parse(await Deno.readFile(YOLOV5N));
const config = tinyConfig({ imgsz: IMGSZ, batch_size: BATCH, freeze: 10 });
/** Same kernels on the same image; only the padding around it differs, so float32 summation noise at most (as in
 * frozen_cache_test.ts). */
const SAME_RTOL = 1e-5;

Deno.test("shortBatchSize: the last batch's size where the images do not fill every batch", () => {
  assert.equal(shortBatchSize(67, 16), 3);
  assert.equal(shortBatchSize(7, 3), 1);
  assert.equal(shortBatchSize(64, 16), null);
});

Deno.test("SizedSteps runs each batch on the program planned for its size and reads that program's items", async () => {
  const calls: string[] = [];
  const stub = (name: string, batch: number): SizedProgram => ({
    device: {} as GPUDevice,
    options: { batch },
    load: (b) => void calls.push(`${name} load ${b.size}`),
    encodeStep: () => void calls.push(`${name} step`),
    readItems: () => Promise.resolve({ box: batch, obj: 0, cls: 0, loss: 0 }),
  });
  const steps = new SizedSteps(stub("main", 3), stub("short", 1));
  const items: number[] = [];
  for (const size of [3, 1, 3]) {
    steps.load({ size } as Batch);
    steps.encodeStep({} as GPUCommandEncoder);
    items.push((await steps.readItems()).box);
  }
  assert.deepEqual(calls, [
    "main load 3",
    "main step",
    "short load 1",
    "short step",
    "main load 3",
    "main step",
  ]);
  assert.deepEqual(items, [3, 1, 3]);
});

/** The work of a program's step GEMMs (forward, weight and data gradients): linear in the images it is planned for. */
function gemmFlops(program: TrainProgram): number {
  const gemm = (d: Dispatch) => /(forward|backward_weight|backward_data)$/.test(d.label);
  return program.stepDispatches.filter(gemm).reduce((s, d) => s + (d.flops ?? 0), 0);
}

gpuTest(
  "a short batch's own program does its images' work only and trains as the padded step does",
  async (device) => {
    const options = {
      batch: BATCH,
      imgsz: IMGSZ,
      freeze: 10,
      hyp: config.hyp,
      programs: new ProgramCache(device),
    };
    const main = await TrainProgram.createCached(device, model, options, { samples: dataset.train });
    const short = main.short!;
    assert.equal(short.options.batch, 1);
    assert.equal(short.params, main.params);
    assert.equal(short.grads, main.grads);
    assert.equal(short.loss!.scale, main.loss!.scale);
    assert.equal(short.cache!.bytes, 0, "reads main's feature cache, holds none of its own");
    assert.equal(gemmFlops(short) * BATCH, gemmFlops(main));

    const loader = new BatchLoader(dataset.train, {
      imgsz: IMGSZ,
      batchSize: BATCH,
      shuffle: false,
      augment: false,
      pixels: false,
    });
    let last: Batch | undefined;
    for await (const batch of loader.epoch(0)) last = batch;
    assert.equal(last!.size, 1);
    const floats = main.layout.size;
    const stepOn = async (program: TrainProgram): Promise<{ items: LossItems; grads: Float32Array }> => {
      program.load(last!);
      const encoder = device.createCommandEncoder();
      encoder.clearBuffer(main.grads!);
      program.encodeStep(encoder);
      device.queue.submit([encoder.finish()]);
      return { items: await program.readItems(), grads: await readF32(device, main.grads!, floats) };
    };
    const padded = await stepOn(main);
    const own = await stepOn(short);
    const items = (i: LossItems) => [i.box, i.obj, i.cls, i.loss];
    assert.ok(relL2(items(own.items), items(padded.items)) < SAME_RTOL, "loss items");
    assert.ok(padded.grads.some((g) => g !== 0));
    assert.ok(relL2(own.grads, padded.grads) < SAME_RTOL, "gradients");
    main.destroy();
  },
  REFERENCE,
);

gpuTest(
  "the cache fill runs the short last batch on the short program; every image's features are bit for bit " +
    "those of one batch of all",
  async (device) => {
    const options = {
      batch: BATCH,
      imgsz: IMGSZ,
      freeze: 10,
      hyp: config.hyp,
      programs: new ProgramCache(device),
    };
    const samples = dataset.train;
    const main = await TrainProgram.createCached(device, model, options, { samples });
    const whole = await TrainProgram.createCached(device, model, { ...options, batch: samples.length }, {
      samples,
    });
    assert.equal(whole.short, undefined);
    const last = samples.length - 1;
    for (const [k, b] of main.cache!.boundaries.entries()) {
      const filled = await readF32(device, b.cache, b.size * samples.length);
      const want = await readF32(device, whole.cache!.boundaries[k].cache, b.size * samples.length);
      assert.deepEqual(filled, want, `boundary ${k}`);
      // The short program's own boundary tensor still holds what the fill computed for the last image.
      const view = main.short!.cache!.boundaries[k].view;
      const own = (await readF32(device, view.buffer, view.offset + b.size)).subarray(view.offset);
      assert.ok(own.some((v) => v !== 0));
      assert.deepEqual(own, filled.subarray(last * b.size, (last + 1) * b.size));
    }
    main.destroy();
    whole.destroy();
  },
  REFERENCE,
);

gpuTest(
  "a cached session plans its short last batch at its own size; a whole-forward one pads it",
  async (device) => {
    const options = { gpu: testGpu(device), model, config, train: dataset.train };
    const cached = await FinetuneSession.create(options);
    assert.equal(cached.cached, true);
    assert.equal(cached.steps.short?.options.batch, 1);
    cached.destroy();
    const whole = await FinetuneSession.create({ ...options, frozenCache: false });
    assert.equal(whole.steps.short, undefined);
    whole.destroy();
  },
  REFERENCE,
);
