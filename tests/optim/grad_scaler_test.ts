// GradScaler (docs/training.md §4) against transcriptions of torch's kernels (src/reference/grad_scaler.ts): the
// host scale update, wgsl/optim/unscale.wgsl, and whole amp iterations of the OptimizerStepper against a float64
// reference of train.py's loop in which an injected inf skips exactly its step.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { bindBuffers, createStorage, readF32 } from "../../src/gpu/buffers.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { GRAD_SCALER_DEFAULTS, GradScaler } from "../../src/optim/grad_scaler.ts";
import type { LayoutEntry } from "../../src/optim/groups.ts";
import { OptimizerStepper, type StepperSettings } from "../../src/optim/stepper.ts";
import {
  nonFiniteCheckAndUnscale,
  type RefScalerState,
  updateScale,
} from "../../src/reference/grad_scaler.ts";
import { clipCoef, type RefState, refStep } from "./_reference.ts";

/** f32 kernels against the float64 reference over a few steps: a few ulps of f32 (~1.2e-7 each) at most. */
const REL_TOL = 1e-5;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

Deno.test("GradScaler.update follows torch's _amp_update_scale_ (backoff, growth interval, finite growth)", () => {
  const o = { ...GRAD_SCALER_DEFAULTS, growthInterval: 3 };
  const scaler = new GradScaler(true, { growthInterval: 3 });
  let ref: RefScalerState = { scale: o.initScale, growthTracker: 0 };
  const rand = rng(5);
  let skipped = 0;
  for (let k = 0; k < 200; k++) {
    const found = rand() < -0.3;
    skipped += found ? 1 : 0;
    scaler.update(found);
    ref = updateScale(ref, found, o.growthFactor, o.backoffFactor, o.growthInterval);
    assert.equal(scaler.scale, ref.scale, `update ${k}`);
    assert.equal(scaler.state().growthTracker, ref.growthTracker, `update ${k} tracker`);
  }
  assert.equal(scaler.skippedSteps, skipped);
  // A growth that would leave float32's range keeps the scale.
  const top = new GradScaler(true, { initScale: 2 ** 127, growthInterval: 1 });
  top.update(false);
  assert.equal(top.scale, 2 ** 127);
  // The default interval is train.py's 2000: the 2000th finite step doubles the scale, not the 1999th.
  const standard = new GradScaler(true);
  for (let k = 0; k < 1999; k++) standard.update(false);
  assert.equal(standard.scale, GRAD_SCALER_DEFAULTS.initScale);
  standard.update(false);
  assert.equal(standard.scale, GRAD_SCALER_DEFAULTS.initScale * GRAD_SCALER_DEFAULTS.growthFactor);
});

Deno.test("a disabled GradScaler (amp off) is a pass-through whose scale reads 1", () => {
  const scaler = new GradScaler(false);
  scaler.update(true);
  assert.deepEqual([scaler.scale, scaler.invScale, scaler.skippedSteps], [1, 1, 0]);
});

/** [n4, -, -, -] of unscale.wgsl. */
const UNSCALE_FOUND = 2;

for (const chunk of [1, 256]) {
  for (const bad of [null, Infinity, -Infinity, NaN] as const) {
    gpuTest(
      `unscale.wgsl matches torch's non-finite check and unscale (runs of ${chunk}, ${bad})`,
      async (device) => {
        const n = 4 * 300;
        const rand = rng(chunk);
        const scale = 2 ** 14;
        const grads = new Float32Array(n).map(() => rand() * scale);
        if (bad !== null) grads[777] = bad;
        const want = grads.slice();
        const wantFound = nonFiniteCheckAndUnscale(want, Math.fround(1 / scale));
        const programs = new ProgramCache(device);
        const pipeline = programs.get("optim/unscale.wgsl", "main", {
          WG: 64,
          CHUNK: chunk,
          FOUND: UNSCALE_FOUND,
        });
        const g = createStorage(device, n * 4, "grads");
        device.queue.writeBuffer(g, 0, grads);
        const s = createStorage(device, 8, "scale");
        device.queue.writeBuffer(s, 0, new Float32Array([scale, 1 / scale]));
        const state = createStorage(device, 16, "state");
        const params = device.createBuffer({
          size: 16,
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
        device.queue.writeBuffer(params, 0, new Uint32Array([n / 4, 0, 0, 0]));
        const encoder = device.createCommandEncoder();
        const pass = encoder.beginComputePass();
        pass.setPipeline(pipeline);
        pass.setBindGroup(0, bindBuffers(device, pipeline, [g, s, state, params]));
        pass.dispatchWorkgroups(Math.ceil(n / 4 / (64 * chunk)));
        pass.end();
        device.queue.submit([encoder.finish()]);
        const got = await readF32(device, g, n);
        // Multiplying by a power of two is exact: the results are the reference's bit for bit (NaN stays NaN).
        assert.deepEqual([...got], [...want]);
        const flag = new Uint32Array((await readF32(device, state, 4)).buffer)[UNSCALE_FOUND];
        assert.equal(flag !== 0, wantFound);
        assert.equal(wantFound, bad !== null);
      },
    );
  }
}

const LAYOUT: LayoutEntry[] = [
  { name: "w", shape: [2, 3], offset: 0, size: 6, role: "weight", group: 1, frozen: false },
  { name: "b", shape: [2], offset: 8, size: 2, role: "bias", group: 0, frozen: false },
];
const N = 12;
const GROWTH_INTERVAL = 2;
/** batch 64 = nbs: every iteration steps; warmup over the first 8 iterations moves lr and momentum. */
const SETTINGS: StepperSettings = {
  optimizer: "SGD",
  hyp: { ...SCRATCH_LOW, warmup_epochs: 1 },
  batchSize: 64,
  nb: 4,
  epochs: 2,
  cosLr: false,
  ema: { decay: 0.9999, tau: 3 },
  amp: { growthInterval: GROWTH_INTERVAL },
};

gpuTest(
  "amp steps: an injected inf skips exactly its step (weights, momentum untouched; EMA as train.py), halves the " +
    "scale, and the scale doubles after the growth interval",
  async (device) => {
    const overflowAt = new Set([0, 3]);
    const params = createStorage(device, N * 4, "params");
    const grads = createStorage(device, N * 4, "grads");
    const upload = createStorage(device, N * 4, "upload");
    const lossScale = createStorage(device, 8, "loss scale");
    const rand = rng(11);
    const p0 = new Float32Array(N);
    LAYOUT.forEach((e) => {
      for (let k = 0; k < e.size; k++) p0[e.offset + k] = rand();
    });
    device.queue.writeBuffer(params, 0, p0);
    const stepper = new OptimizerStepper(device, new ProgramCache(device), LAYOUT, {
      params,
      grads,
      lossScale,
    }, SETTINGS);

    const o = { ...GRAD_SCALER_DEFAULTS, growthInterval: GROWTH_INTERVAL };
    let refScaler: RefScalerState = { scale: o.initScale, growthTracker: 0 };
    const ref = LAYOUT.map((e) => Array.from(p0.subarray(e.offset, e.offset + e.size)));
    const refEma = ref.map((t) => [...t]);
    const states: RefState[] = LAYOUT.map(() => ({}));
    let steps = 0, updates = 0;
    const scales: number[] = [];
    for (let epoch = 0; epoch < SETTINGS.epochs; epoch++) {
      for (let i = 0; i < SETTINGS.nb; i++) {
        const ni = epoch * SETTINGS.nb + i;
        const g = LAYOUT.map((e) => Array.from({ length: e.size }, () => rand()));
        const scaled = new Float32Array(N);
        LAYOUT.forEach((e, k) => scaled.set(g[k].map((x) => x * refScaler.scale), e.offset));
        if (overflowAt.has(ni)) scaled[LAYOUT[0].offset + 4] = Infinity;
        device.queue.writeBuffer(upload, 0, scaled);
        const before = {
          params: await readF32(device, params, N),
          momentum: await readF32(device, stepper.optimizer.state[0], N),
          ema: await readF32(device, stepper.ema.buffers[0], N),
        };
        const encoder = device.createCommandEncoder();
        const plan = stepper.begin(encoder, epoch, i);
        assert.ok(plan.stepped, `ni ${ni} steps`);
        // What a backward of loss*S adds into the gradients.
        encoder.copyBufferToBuffer(upload, 0, grads, 0, N * 4);
        stepper.finish(encoder, plan);
        device.queue.submit([encoder.finish()]);
        const report = await stepper.afterSubmit(plan);
        assert.equal(
          report.lossScale,
          refScaler.scale,
          `ni ${ni}: the trace reports the scale the loss used`,
        );
        scales.push(report.lossScale);

        const found = overflowAt.has(ni);
        if (!found) {
          steps++;
          const { coef } = clipCoef(g, 10);
          LAYOUT.forEach((e, k) =>
            refStep(ref[k], g[k].map((x) => x * coef), states[k], {
              kind: "SGD",
              lr: plan.lr[e.group],
              momentum: plan.momentum[e.group],
              wd: e.group === 1 ? stepper.schedule.weightDecay : 0,
              step: steps,
            })
          );
        }
        // train.py runs ema.update(model) after every optimizer-step iteration, skipped or not.
        const d = 0.9999 * (1 - Math.exp(-++updates / 3));
        ref.forEach((t, k) => t.forEach((x, j) => refEma[k][j] = d * refEma[k][j] + (1 - d) * x));
        refScaler = updateScale(refScaler, found, o.growthFactor, o.backoffFactor, o.growthInterval);
        assert.equal(stepper.scaler.scale, refScaler.scale, `ni ${ni}: scale after update`);
        assert.equal(
          stepper.optimizer.steps,
          steps,
          `ni ${ni}: optimizer steps (a skipped one does not count)`,
        );

        const got = await readF32(device, params, N);
        const ema = await readF32(device, stepper.ema.buffers[0], N);
        assert.ok((await readF32(device, grads, N)).every((x) => x === 0), `ni ${ni}: gradients consumed`);
        if (found) {
          assert.deepEqual([...got], [...before.params], `ni ${ni}: weights untouched by the skipped step`);
          assert.deepEqual(
            [...(await readF32(device, stepper.optimizer.state[0], N))],
            [...before.momentum],
            `ni ${ni}: momentum untouched by the skipped step`,
          );
          assert.equal(
            report.lossScale / stepper.scaler.scale,
            1 / o.backoffFactor,
            `ni ${ni}: scale halved`,
          );
        }
        LAYOUT.forEach((e, k) => {
          const at = `ni ${ni} ${e.name}`;
          ref[k].forEach((x, j) => {
            assert.ok(
              Math.abs(got[e.offset + j] - x) <= REL_TOL * Math.abs(x),
              `${at}[${j}] ${got[e.offset + j]} vs ${x}`,
            );
            const y = refEma[k][j];
            assert.ok(Math.abs(ema[e.offset + j] - y) <= REL_TOL * Math.abs(y), `${at} ema[${j}]`);
          });
        });
      }
      stepper.endEpoch(epoch);
    }
    // The scale each iteration's loss used: 2^16, overflow at 0 halves it; 1 and 2 are finite, so it grows after
    // the second; 3 overflows; 4 and 5 grow it again; 6, 7.
    const s = o.initScale;
    assert.deepEqual(scales, [s, s / 2, s / 2, s, s / 2, s / 2, s, s]);
    stepper.destroy();
  },
);
