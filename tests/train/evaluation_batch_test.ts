// Evaluation runs in evened-out batches (evaluationBatch) instead of batch_size ones: that saves only padding if
// an image's forward is the same bits whatever batch it rides in, which the second test checks on yolov5n's ops.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { BatchLoader } from "../../src/train/data/loader.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { evaluationBatch } from "../../src/train/finetune.ts";
import { newModel } from "../../src/train/new_model.ts";
import { TrainProgram } from "../../src/train/program.ts";
import { synthDir } from "./_finetune.ts";

const IMGSZ = 64;

Deno.test("evaluationBatch: the fewest batches of at most batch_size, filled evenly", () => {
  assert.equal(evaluationBatch(17, 16), 9);
  assert.equal(evaluationBatch(16, 16), 16);
  assert.equal(evaluationBatch(5, 4), 3);
  assert.equal(evaluationBatch(1, 16), 1);
  assert.equal(evaluationBatch(0, 16), 1);
  for (let n = 1; n <= 40; n++) {
    for (const size of [1, 2, 3, 8, 16]) {
      const b = evaluationBatch(n, size);
      assert.ok(b <= size, `${n} at ${size}: ${b}`);
      assert.equal(Math.ceil(n / b), Math.ceil(n / size), `${n} at ${size}: batches`);
    }
  }
});

gpuTest(
  "an image's forward is the same bits in a full batch, a smaller one and a padded one",
  async (device) => {
    const dir = await synthDir(4, IMGSZ, 7);
    try {
      const { train } = await loadDataset(dir, { nc: 3 });
      const [batch] = await Array.fromAsync(
        new BatchLoader(train, { imgsz: IMGSZ, batchSize: 4, shuffle: false, augment: false }).epoch(),
      );
      const model = newModel({ nc: 3, depth: 0.33, width: 0.25, imgsz: IMGSZ });
      const program = (size: number) =>
        TrainProgram.create(device, model, { batch: size, imgsz: IMGSZ, training: false });
      const four = program(4), three = program(3);
      try {
        const per = 3 * IMGSZ * IMGSZ;
        const whole = await four.forward(batch.images, 4);
        const first3 = await three.forward(batch.images.slice(0, 3 * per), 3);
        // the fourth image alone in the 3-batch program: two padded slots
        const last = await three.forward(batch.images.slice(3 * per), 1);
        whole.forEach((head, h) => {
          const image = head.length / 4;
          assert.ok(head.some((v) => v !== 0), `head ${h} is not all zeros`);
          assert.deepEqual(
            first3[h].subarray(0, 3 * image),
            head.subarray(0, 3 * image),
            `head ${h}, images 0-2`,
          );
          assert.deepEqual(last[h].subarray(0, image), head.subarray(3 * image), `head ${h}, image 3`);
        });
      } finally {
        four.destroy();
        three.destroy();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
