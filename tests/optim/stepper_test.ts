import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { createStorage, readF32 } from "../../src/gpu/buffers.ts";
import type { LayoutEntry } from "../../src/optim/groups.ts";
import { OptimizerStepper, type StepperSettings } from "../../src/optim/stepper.ts";

const LAYOUT: LayoutEntry[] = [
  { name: "w", shape: [2, 3], offset: 0, size: 6, role: "weight", group: 1, frozen: false },
  { name: "b", shape: [2], offset: 8, size: 2, role: "bias", group: 0, frozen: false },
];
const SETTINGS: StepperSettings = {
  optimizer: "Adam",
  hyp: { ...SCRATCH_LOW, lr0: 0.001 },
  batchSize: 16,
  nb: 30,
  epochs: 6,
  cosLr: false,
};

function makeLoop(device: GPUDevice) {
  const params = createStorage(device, 64, "params");
  const grads = createStorage(device, 64, "grads");
  return {
    loop: new OptimizerStepper(device, new ProgramCache(device), LAYOUT, { params, grads }, SETTINGS),
    grads,
  };
}

gpuTest(
  "OptimizerStepper.replay restores schedule, step and EMA counters as if the epochs had run",
  async (device) => {
    const ran = makeLoop(device).loop;
    for (let epoch = 0; epoch < 4; epoch++) {
      for (let i = 0; i < SETTINGS.nb; i++) {
        const encoder = device.createCommandEncoder();
        const plan = ran.begin(encoder, epoch, i);
        ran.finish(encoder, plan);
        device.queue.submit([encoder.finish()]);
        await ran.afterSubmit(plan);
      }
      ran.endEpoch(epoch);
    }
    const resumed = makeLoop(device).loop;
    resumed.replay(4);
    assert.equal(resumed.optimizer.steps, ran.optimizer.steps);
    assert.equal(resumed.ema.updates, ran.ema.updates);
    const encoder = device.createCommandEncoder();
    assert.deepEqual(resumed.begin(encoder, 4, 0), ran.begin(encoder, 4, 0));
  },
);

gpuTest("OptimizerStepper.begin zeroes the gradients at each epoch start only", async (device) => {
  const { loop, grads } = makeLoop(device);
  for (const [i, zeroed] of [[0, true], [1, false]] as const) {
    device.queue.writeBuffer(grads, 0, new Float32Array(12).fill(1));
    const encoder = device.createCommandEncoder();
    loop.begin(encoder, 0, i);
    device.queue.submit([encoder.finish()]);
    assert.equal((await readF32(device, grads, 12)).every((x) => x === 0), zeroed, `i = ${i}`);
  }
});
