// Mixed precision on the training path (issue 18) with embedded fixtures, no reference data needed: `amp`'s
// resolution against the adapter, an amp fine-tune of a small YOLOv5-form model staying within the f16 bound of
// the same f32 run, and an amp run whose loss scale grew and backed off resuming from its checkpoint exactly.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { GradScalerOptions } from "../../src/optim/grad_scaler.ts";
import type { TraceLine } from "../../src/optim/trace.ts";
import type { FinetuneConfigInput } from "../../src/config/finetune.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { FinetuneSession } from "../../src/train/finetune.ts";
import { epochStart, trainLoop } from "../../src/train/loop.ts";
import { AmpUnavailableError, localAdapterPrecision, resolveAmp } from "../../src/train/precision.ts";
import { synthDir, tinyConfig } from "./_finetune.ts";
import { tinyModel } from "./_tiny_model.ts";
import { relL2 } from "./_golden.ts";
import { AMP_LOSS_RTOL, AMP_WEIGHT_DELTA_RTOL } from "./_amp_bounds.ts";
import { assertSilusFused } from "./_fusion.ts";

const IMGSZ = 64;
const dir = await synthDir(6, IMGSZ);
const dataset = await loadDataset(dir, { nc: 3 });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

async function session(
  amp: boolean,
  overrides: FinetuneConfigInput = {},
  scaler?: GradScalerOptions,
  unfused = false,
) {
  const gpu = await getGpu();
  return await FinetuneSession.create({
    gpu,
    model: tinyModel(3, IMGSZ, 1, unfused),
    config: tinyConfig({ amp, epochs: 3, batch_size: 2, hyp: { lr0: 0.02 }, ...overrides }),
    train: dataset.train,
    scaler,
  });
}

Deno.test("amp resolves against the adapter: auto only on hardware with shader-f16, true needs shader-f16", () => {
  const adapter = (isFallback: boolean, hasF16: boolean) => ({
    adapterName: "test adapter",
    isFallback,
    hasF16,
  });
  assert.equal(resolveAmp("auto", adapter(false, true)), true);
  assert.equal(resolveAmp("auto", adapter(true, true)), false, "lavapipe: f16 is no faster on the CPU");
  assert.equal(resolveAmp("auto", adapter(false, false)), false);
  assert.equal(resolveAmp(true, adapter(true, true)), true, "an explicit amp: true runs on lavapipe");
  assert.equal(resolveAmp(false, adapter(false, true)), false);
  assert.throws(() => resolveAmp(true, adapter(false, false)), AmpUnavailableError);
  assert.throws(
    () => resolveAmp(true, adapter(false, false)),
    /amp: true needs an adapter with the shader-f16/,
  );
});

gpuTest(
  "the server's admission check reads the same adapter facts the trainer's device reports",
  async () => {
    const gpu = await getGpu();
    const local = await localAdapterPrecision();
    assert.deepEqual(local, { adapterName: gpu.adapterName, isFallback: gpu.isFallback, hasF16: gpu.hasF16 });
  },
);

// Fused: each Conv -> SiLU pair runs as one conv (program_fusion.ts), its SiLU f32 beside f16 GEMM operands.
// Unfused: BatchNorm (f32, batch statistics) between the f16-operand convs.
for (const unfused of [false, true]) {
  gpuTest(
    `an amp fine-tune stays within the f16 bound of the same f32 run; its trace carries loss_scale${
      unfused ? " (unfused, BatchNorm)" : " (every Conv -> SiLU fused)"
    }`,
    async () => {
      const trace = async (amp: boolean) => {
        const s = await session(amp, {}, undefined, unfused);
        try {
          if (!unfused) assertSilusFused(s.program);
          const w0 = await readF32(s.device, s.params, s.layout.size);
          const lines: TraceLine[] = [];
          await s.train({ onIteration: ({ line }) => lines.push(line) });
          const w = await readF32(s.device, s.params, s.layout.size);
          return { lines, delta: w.map((x, k) => x - w0[k]) };
        } finally {
          s.destroy();
        }
      };
      const f32 = await trace(false), amp = await trace(true);
      assert.equal(amp.lines.length, f32.lines.length);
      amp.lines.forEach((a, k) => {
        const f = f32.lines[k];
        assert.equal(f.loss_scale, 1, `ni ${k}: f32 scale`);
        assert.equal(a.loss_scale, 2 ** 16, `ni ${k}: GradScaler's initial scale, no overflow on this model`);
        const rel = Math.abs(a.loss - f.loss) / f.loss;
        assert.ok(rel < AMP_LOSS_RTOL, `ni ${k}: loss ${a.loss} vs f32 ${f.loss} (rel ${rel})`);
      });
      const err = relL2(amp.delta, f32.delta);
      assert.ok(err < AMP_WEIGHT_DELTA_RTOL, `weight change relative L2 ${err}`);
      assert.ok(err > 0, "the amp run computed in f16: its weights differ from the f32 run's");
    },
  );
}

gpuTest(
  "an amp run resumes exactly from its epoch checkpoint: scale, growth tracker and skipped steps included",
  async () => {
    // Adam: a skipped step must not count as t. Growth every 2 finite steps, and an inf injected into one
    // gradient at ni 1: the scale moves both ways before the checkpoint.
    const overrides: FinetuneConfigInput = { optimizer: "Adam", hyp: { lr0: 0.002 } };
    const scaler = { growthInterval: 2 };
    const INJECT_AT = 1;
    const run = async (s: FinetuneSession, stopAfter?: number, state?: Uint8Array) => {
      const start = state ? s.restore(state) : epochStart(0);
      const nb = s.loader.batchesPerEpoch;
      let ni = start.epoch * nb + start.iteration;
      const inf = s.device.createBuffer({
        size: 4,
        usage: GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
      });
      s.device.queue.writeBuffer(inf, 0, new Float32Array([Infinity]));
      const program = s.program;
      const lines: TraceLine[] = [];
      let saved: Uint8Array | undefined;
      const stop = new AbortController();
      const done = trainLoop({
        // The test hook: the program's step, plus an inf added into one gradient at ni INJECT_AT.
        step: {
          device: program.device,
          load: (batch) => program.load(batch),
          encodeStep: (encoder) => {
            program.encodeStep(encoder);
            if (ni++ === INJECT_AT) encoder.copyBufferToBuffer(inf, 0, program.grads!, 0, 4);
          },
          readItems: () => program.readItems(),
        },
        optimizer: s.optimizer,
        batches: (epoch) => s.loader.epoch(epoch),
        epochs: s.options.config.epochs,
        start,
        signal: stop.signal,
        onIteration: ({ line }) => lines.push(line),
        onEpochEnd: async (epoch) => {
          if (epoch + 1 === stopAfter) {
            saved = await s.checkpoint(epochStart(epoch + 1));
            stop.abort(new Error("stopped"));
          }
        },
      });
      if (stopAfter === undefined) await done;
      else await assert.rejects(done, /stopped/);
      return { lines, saved };
    };
    const whole = await session(true, overrides, scaler);
    const wholeRun = await run(whole);
    const scales = wholeRun.lines.map((l) => l.loss_scale);
    assert.ok(scales.some((x) => x < 2 ** 16), `the injected inf backs the scale off: ${scales}`);
    assert.ok(scales.some((x, k) => x > scales[k - 1]), `finite steps grow it again: ${scales}`);
    assert.equal(whole.optimizer.scaler.skippedSteps, 1);

    const first = await session(true, overrides, scaler);
    const { saved } = await run(first, 2);
    first.destroy();
    const resumed = await session(true, overrides, scaler);
    const rest = await run(resumed, undefined, saved);
    const nb = whole.loader.batchesPerEpoch;
    assert.deepEqual(rest.lines, wholeRun.lines.slice(2 * nb));
    assert.equal(resumed.optimizer.optimizer.steps, whole.optimizer.optimizer.steps);
    const read = (s: FinetuneSession, b: GPUBuffer) => readF32(s.device, b, s.layout.size);
    assert.deepEqual(await read(resumed, resumed.params), await read(whole, whole.params));
    assert.deepEqual(await read(resumed, resumed.emaParams), await read(whole, whole.emaParams));
    whole.destroy();
    resumed.destroy();
  },
);
