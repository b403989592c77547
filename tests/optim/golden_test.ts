// The four shared/golden/optimizer cases (PyTorch 1.13 SGD/Adam/AdamW + LambdaLR + clip_grad_norm_ + ModelEMA)
// replayed through OptimizerStepper (Schedule + WGSL Optimizer + Ema) the way a trainer drives it: each batch's
// gradients are added into the grad buffer on the GPU, one submit per iteration.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { referenceData } from "../_helpers/reference.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { createStorage } from "../../src/gpu/buffers.ts";
import {
  groupOfRole,
  type LayoutEntry,
  layoutLength,
  type ParamRole,
  pyFloat,
} from "../../src/optim/groups.ts";
import type { Hyp } from "../../src/optim/schedule.ts";
import { OptimizerStepper } from "../../src/optim/stepper.ts";
import { vec4Accumulator } from "./_accumulate.ts";

/** The golden files' own agreement target is ~1e-6 (float32 vs float32, different summation orders). */
const PARAM_REL_TOL = 1e-5;
const NORM_REL_TOL = 1e-5;

interface Golden {
  optimizer: "SGD" | "Adam" | "AdamW";
  cos_lr: boolean;
  batch_size: number;
  nbs: number;
  iterations_per_epoch: number;
  epochs: number;
  max_grad_norm: number;
  weight_decay_effective_at_start: number;
  ema: { decay: number; tau: number };
  hyp: Hyp;
  params: { role: ParamRole; initial: number[] }[];
  iterations: {
    ni: number;
    epoch: number;
    accumulate: number;
    stepped: boolean;
    lr: number[];
    momentum: number[];
    grad_norm: number | null;
    grads: number[][];
    params: number[][];
    ema: number[][];
  }[];
}

function layoutOf(golden: Golden): LayoutEntry[] {
  let offset = 0;
  return golden.params.map((p, k) => {
    const e: LayoutEntry = {
      name: `p${k}`,
      shape: [p.initial.length],
      offset,
      size: p.initial.length,
      role: p.role,
      group: groupOfRole(p.role),
      frozen: false,
    };
    offset += Math.ceil(p.initial.length / 4) * 4;
    return e;
  });
}

function flatten(layout: LayoutEntry[], tensors: number[][]): Float32Array<ArrayBuffer> {
  const out = new Float32Array(layoutLength(layout));
  layout.forEach((e, k) => out.set(tensors[k], e.offset));
  return out;
}

function relL2(actual: Float32Array, expected: number[]): number {
  let num = 0, den = 0;
  expected.forEach((x, k) => {
    num += (actual[k] - x) ** 2;
    den += x * x;
  });
  return Math.sqrt(num / Math.max(den, 1e-30));
}

const REFERENCE = referenceData(import.meta.url, "golden/optimizer/");

for (const name of ["sgd_cosine_accumulate", "sgd_short_warmup_ema", "adam_linear", "adamw_cosine_clipped"]) {
  gpuTest(`optimizer kernels reproduce golden/optimizer/${name}.json`, async (device) => {
    const golden: Golden = JSON.parse(
      await Deno.readTextFile(REFERENCE.url(`golden/optimizer/${name}.json`)),
    );
    const layout = layoutOf(golden);
    const n = layoutLength(layout);
    const programs = new ProgramCache(device);
    const params = createStorage(device, n * 4, "params");
    device.queue.writeBuffer(params, 0, flatten(layout, golden.params.map((p) => p.initial)));
    const grads = createStorage(device, n * 4, "grads");
    const batch = createStorage(device, n * 4, "batch_grads");
    const accumulate = vec4Accumulator(device, grads, batch, n / 4);

    const loop = new OptimizerStepper(device, programs, layout, { params, grads }, {
      optimizer: golden.optimizer,
      hyp: golden.hyp,
      batchSize: golden.batch_size,
      nb: golden.iterations_per_epoch,
      epochs: golden.epochs,
      cosLr: golden.cos_lr,
      nbs: golden.nbs,
      maxGradNorm: golden.max_grad_norm,
      ema: golden.ema,
    });
    assert.equal(
      loop.describe(),
      `optimizer: ${golden.optimizer}(lr=${
        pyFloat(golden.hyp.lr0)
      }) with parameter groups 1 weight(decay=0.0), ` +
        `2 weight(decay=${pyFloat(golden.weight_decay_effective_at_start)}), 1 bias`,
    );
    const staging = device.createBuffer({
      size: n * 8,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });

    let epoch = 0;
    let worst = { params: 0, ema: 0, norm: 0 };
    for (const g of golden.iterations) {
      if (g.epoch !== epoch) loop.endEpoch(epoch++);
      const encoder = device.createCommandEncoder();
      const plan = loop.begin(encoder, g.epoch, g.ni - g.epoch * golden.iterations_per_epoch);
      const at = `${name} ni ${g.ni}`;
      assert.deepEqual(
        [plan.accumulate, plan.stepped, plan.lr, plan.momentum],
        [g.accumulate, g.stepped, g.lr, g.momentum],
        at,
      );
      device.queue.writeBuffer(batch, 0, flatten(layout, g.grads));
      const pass = encoder.beginComputePass();
      accumulate(pass);
      pass.end();
      loop.finish(encoder, plan);
      encoder.copyBufferToBuffer(params, 0, staging, 0, n * 4);
      encoder.copyBufferToBuffer(loop.ema.buffers[0], 0, staging, n * 4, n * 4);
      device.queue.submit([encoder.finish()]);
      const norm = (await loop.afterSubmit(plan)).gradNorm;
      assert.equal(norm === null, g.grad_norm === null, at);
      if (norm !== null) {
        const err = Math.abs(norm - g.grad_norm!) / g.grad_norm!;
        worst.norm = Math.max(worst.norm, err);
        assert.ok(err <= NORM_REL_TOL, `${at}: grad_norm ${norm} vs ${g.grad_norm}`);
      }
      await staging.mapAsync(GPUMapMode.READ);
      const got = new Float32Array(staging.getMappedRange().slice(0));
      staging.unmap();
      layout.forEach((e, k) => {
        const p = relL2(got.subarray(e.offset, e.offset + e.size), g.params[k]);
        const m = relL2(got.subarray(n + e.offset, n + e.offset + e.size), g.ema[k]);
        worst = { params: Math.max(worst.params, p), ema: Math.max(worst.ema, m), norm: worst.norm };
        assert.ok(p <= PARAM_REL_TOL, `${at}: params[${k}] (${e.role}) rel err ${p}`);
        assert.ok(m <= PARAM_REL_TOL, `${at}: ema[${k}] (${e.role}) rel err ${m}`);
      });
    }
    assert.equal(loop.optimizer.steps, golden.iterations.filter((g) => g.stepped).length);
    console.log(
      `${name}: worst relative error params ${worst.params.toExponential(2)}, ema ${
        worst.ema.toExponential(2)
      }, grad_norm ${worst.norm.toExponential(2)}`,
    );
  }, REFERENCE);
}
