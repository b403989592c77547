// Fine-tuning an unfused model (Conv, BatchNormalization, SiLU): the running statistics are part of the result
// like the weights — averaged by the EMA (train.py's ModelEMA covers every float state_dict entry), written into
// last.onnx / ema.onnx, saved in checkpoints — and the frozen-feature cache stands aside (batch statistics).
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import type { OnnxModel } from "../../src/onnx/model.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { FinetuneSession } from "../../src/train/finetune.ts";
import { CacheUnavailableError } from "../../src/train/frozen_cache.ts";
import { epochStart } from "../../src/train/loop.ts";
import { tinyBnModel } from "./_bn_model.ts";
import { relL2 } from "./_golden.ts";
import { synthDir, testGpu, tinyConfig } from "./_finetune.ts";

const IMGSZ = 64;
const dir = await synthDir(6, IMGSZ, 7);
const dataset = await loadDataset(dir, { nc: 3 });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
const config = tinyConfig({ imgsz: IMGSZ, batch_size: 2, epochs: 2, hyp: { lr0: 0.05 } });
/** float32 EMA on the GPU vs a float64 replay of it: a few ulps per update. */
const EMA_RTOL = 1e-6;
const session = (device: GPUDevice) =>
  FinetuneSession.create({
    gpu: testGpu(device),
    model: tinyBnModel(3, IMGSZ),
    config,
    train: dataset.train,
  });

/** The running-statistic initializers (BatchNormalization inputs 3 and 4) of a model, by name. */
function runningStats(model: OnnxModel): Map<string, Float32Array> {
  const names = model.graph.node.filter((n) => n.opType === "BatchNormalization").flatMap((n) =>
    n.input.slice(3)
  );
  return new Map(names.map((name) => [name, model.getInitializer(name).data]));
}

gpuTest(
  "running statistics: updated by training, averaged by the EMA, exported and checkpointed",
  async (device) => {
    const base = runningStats(tinyBnModel(3, IMGSZ));
    const whole = await session(device);
    const { buffers, bufferLayout } = whole.program;
    assert.ok(buffers && bufferLayout, "an unfused model has running statistics");
    // ModelEMA replayed over the running statistics the GPU holds after each stepping iteration (test-only reads).
    const ema = new Map([...base].map(([name, b]) => [name, Float64Array.from(b)]));
    const reads: Promise<void>[] = [];
    let updates = 0;
    await whole.train({
      onIteration: ({ line }) => {
        if (!line.stepped) return;
        const d = 0.9999 * (1 - Math.exp(-++updates / 2000));
        const read = readF32(device, buffers, bufferLayout.size);
        reads.push(
          (reads.at(-1) ?? Promise.resolve()).then(() => read).then((flat) => {
            for (const [name, e] of ema) {
              const entry = bufferLayout.byName.get(name)!;
              for (let i = 0; i < e.length; i++) e[i] = d * e[i] + (1 - d) * flat[entry.offset + i];
            }
          }),
        );
      },
    });
    await Promise.all(reads);
    const { last, ema: emaModel } = await whole.models();
    const [lastStats, emaStats] = [runningStats(last), runningStats(emaModel)];
    for (const [name, b] of base) {
      assert.notDeepEqual(
        lastStats.get(name),
        b,
        `${name}: train-mode forwards update the running statistics`,
      );
      const err = relL2(emaStats.get(name)!, ema.get(name)!);
      assert.ok(err < EMA_RTOL, `${name}: EMA of the running statistics off by ${err}`);
    }

    const first = await session(device);
    const stop = new AbortController();
    let state: Uint8Array | undefined;
    await assert.rejects(
      first.train({
        signal: stop.signal,
        onEpochEnd: async (epoch) => {
          state = await first.checkpoint(epochStart(epoch + 1));
          stop.abort(new Error("stop after epoch 0"));
        },
      }),
      /stop after epoch 0/,
    );
    const resumed = await session(device);
    await resumed.train({ start: resumed.restore(state!) });
    const again = await resumed.models();
    assert.deepEqual(runningStats(again.last), lastStats);
    assert.deepEqual(runningStats(again.ema), emaStats);
  },
);

gpuTest("the frozen-feature cache stands aside for BatchNorm models", async (device) => {
  const frozen = { ...config, freeze: 2 };
  const options = {
    gpu: testGpu(device),
    model: tinyBnModel(3, IMGSZ),
    config: frozen,
    train: dataset.train,
  };
  assert.equal((await FinetuneSession.create(options)).cached, false);
  await assert.rejects(FinetuneSession.create({ ...options, frozenCache: true }), CacheUnavailableError);
});
