import assert from "node:assert/strict";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { TrainProgram } from "../../src/train/program.ts";
import {
  checkTrainingMemory,
  estimateTrainingMemory,
  TrainingMemoryError,
} from "../../src/train/training_memory.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { addModel } from "../onnx/_models.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { tinyModel } from "./_tiny_model.ts";

const IMGSZ = 64;
const HYP = SCRATCH_LOW;

gpuTest(
  "estimateTrainingMemory() is at least what the training program allocates for values and gradients",
  (device) => {
    const model = tinyModel(3, IMGSZ);
    const programs = new ProgramCache(device);
    for (const batch of [1, 4]) {
      const program = TrainProgram.create(device, model, { imgsz: IMGSZ, hyp: HYP, programs, batch });
      const need = estimateTrainingMemory(model, batch, IMGSZ)!;
      assert.ok(
        need.totalBytes >= program.memoryBytes,
        `batch ${batch}: ${need.totalBytes} < ${program.memoryBytes}`,
      );
    }
  },
);

Deno.test("checkTrainingMemory() names the total budget or the storage binding limit that a job is over", () => {
  const need = estimateTrainingMemory(tinyModel(3, IMGSZ), 2, IMGSZ)!;
  assert.doesNotThrow(() => checkTrainingMemory(need, { totalBytes: need.totalBytes, maxTensorBytes: null }));
  assert.throws(
    () => checkTrainingMemory(need, { totalBytes: need.totalBytes - 1, maxTensorBytes: null }),
    (err: Error) => err instanceof TrainingMemoryError && /--max-train-memory/.test(err.message),
  );
  assert.throws(
    () =>
      checkTrainingMemory(need, { totalBytes: need.totalBytes, maxTensorBytes: need.largestTensorBytes - 1 }),
    new RegExp(`tensor '${need.largestTensor}' needs .* storage binding limit`),
  );
});

Deno.test("estimateTrainingMemory() gives no estimate for a model without a training graph", () => {
  assert.equal(estimateTrainingMemory(OnnxModel.parse(addModel("raw")), 1, IMGSZ), null);
});
