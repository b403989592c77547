import assert from "node:assert/strict";
import { bceWithLogits, ciou, referenceLoss } from "../../src/reference/loss.ts";
import { lossSettings } from "../../src/train/loss_settings.ts";
import type { LossLayer } from "../../src/train/targets.ts";
import {
  debug0,
  GOLDEN_FILES,
  goldenHeads,
  goldenLayers,
  goldenTargets,
  relL2,
  scenario,
  YOLOV5N_ANCHORS_PX,
  YOLOV5N_STRIDES,
} from "./_golden.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";
import { randomCase, toConvLayout } from "./_cases.ts";
import type { LossCase } from "./_cases.ts";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { GpuMemory } from "../../src/gpu/memory.ts";
import { createStorage, readF32 } from "../../src/gpu/buffers.ts";
import { uploadF32 } from "../_helpers/buffers.ts";
import { createOpContext, submitDispatches } from "../../src/ops/context.ts";
import { planLoss } from "../../src/train/loss.ts";

/** Acceptance bound for loss items vs PyTorch (issue 4); the float64 reference is expected near 1e-6. */

const REFERENCE = referenceData(import.meta.url, ...GOLDEN_FILES);
const GOLDEN_ITEMS_RTOL = 1e-3;
/** Central differences with h = 1e-4 in float64 on smooth pieces: truncation error ~h^2 * f''' is far below. */
const FD_STEP = 1e-4;
const FD_RTOL = 1e-5;

referenceTest(
  REFERENCE,
  "referenceLoss reproduces PyTorch's iteration-0 loss items from the golden raw heads",
  () => {
    const sc = scenario(), dbg = debug0();
    const settings = lossSettings(sc.hyp, 3, 80, sc.imgsz);
    const layers = goldenLayers(YOLOV5N_ANCHORS_PX, YOLOV5N_STRIDES);
    const r = referenceLoss(goldenHeads(), sc.batch_size, layers, goldenTargets(sc.batch_size), settings);
    for (let i = 0; i < 3; i++) {
      const rel = Math.abs(r.items[i] - dbg.loss_items[i]) / dbg.loss_items[i];
      assert.ok(rel < GOLDEN_ITEMS_RTOL, `item ${i}: ${r.items[i]} vs ${dbg.loss_items[i]} (rel ${rel})`);
    }
    assert.ok(Math.abs(r.loss - dbg.loss) / dbg.loss < GOLDEN_ITEMS_RTOL, `loss ${r.loss} vs ${dbg.loss}`);
  },
);

function fdCheck(gamma: number, smoothing: number, seed: number) {
  const c = randomCase(seed, { nc: 3, bs: 2, grids: [4, 2], nt: 5 });
  const settings = { ...c.settings, flGamma: gamma, labelSmoothing: smoothing };
  const heads = c.heads.map((h) => Float64Array.from(h));
  const base = referenceLoss(heads, c.bs, c.layers, c.targets, settings);
  const eval64 = (hs: Float64Array[]) =>
    referenceLoss(hs, c.bs, c.layers, c.targets, settings, base.detached);
  const no = settings.nc + 5;
  let checked = 0;
  heads.forEach((h, li) => {
    for (let idx = 0; idx < h.length; idx++) {
      const f = idx % no;
      const analytic = base.grads[li][idx];
      // Box fields also move the detached objectness target, so only the box term is differentiated for them.
      const of = (r: ReturnType<typeof eval64>) => (f < 4 ? r.items[0] * c.bs : r.loss);
      const x = h[idx];
      h[idx] = x + FD_STEP;
      const up = of(eval64(heads));
      h[idx] = x - FD_STEP;
      const down = of(eval64(heads));
      h[idx] = x;
      const numeric = (up - down) / (2 * FD_STEP);
      const scale = Math.max(Math.abs(numeric), 1e-6);
      assert.ok(
        Math.abs(numeric - analytic) / scale < FD_RTOL,
        `layer ${li} idx ${idx} field ${f}: analytic ${analytic} numeric ${numeric}`,
      );
      checked++;
    }
  });
  assert.ok(checked > 0);
}

Deno.test("referenceLoss gradient matches finite differences (nc 3, tiny grids)", () => fdCheck(0, 0, 1));
Deno.test("referenceLoss gradient matches finite differences with focal loss and smoothing", () =>
  fdCheck(1.5, 0.1, 2));

Deno.test("bceWithLogits matches the closed form for pos_weight 1 and weights positives by pos_weight", () => {
  for (const x of [-7, -0.3, 0, 2.5]) {
    for (const y of [0, 0.25, 1]) {
      const [l, dl] = bceWithLogits(x, y, 1, 0);
      assert.ok(Math.abs(l - (Math.max(x, 0) - x * y + Math.log1p(Math.exp(-Math.abs(x))))) < 1e-12);
      assert.ok(Math.abs(dl - (1 / (1 + Math.exp(-x)) - y)) < 1e-12);
    }
  }
  const [l2] = bceWithLogits(0.7, 1, 2, 0);
  const [l1] = bceWithLogits(0.7, 1, 1, 0);
  assert.ok(Math.abs(l2 - 2 * l1) < 1e-12);
});

Deno.test("ciou is 1 for identical boxes and its tie gradient splits max/min halves", () => {
  const same = ciou([0.5, 0.5, 2, 3], [0.5, 0.5, 2, 3]);
  assert.ok(Math.abs(same.ciou - 1) < 1e-6);
  for (const g of same.grad) assert.ok(Number.isFinite(g));
});

Deno.test("referenceLoss with nc 1 has lcls exactly 0", () => {
  const c = randomCase(3, { nc: 1, bs: 1, grids: [4], nt: 3 });
  const r = referenceLoss(c.heads, c.bs, c.layers as LossLayer[], c.targets, c.settings);
  assert.equal(r.items[2], 0);
  assert.ok(r.items[0] > 0 && r.items[1] > 0);
});

/** float32 GPU sums over up to ~40k cells vs the float64 reference: ~sqrt(n) * 6e-8 plus transcendental ulps. */
const GPU_RTOL = 1e-4;

async function gpuVsReference(device: GPUDevice, c: LossCase, maxTargets: number, padding = 0) {
  device.pushErrorScope("validation");
  const programs = new ProgramCache(device);
  const ctx = createOpContext(new GpuMemory(device), programs);
  const na = 3;
  const planned = c.bs + padding;
  const heads = c.layers.map((l, i) => {
    const real = toConvLayout(c.heads[i], c.bs, na, l.ny, l.nx);
    const data = new Float32Array(real.length / c.bs * planned).fill(0.5);
    data.set(real);
    const shape = [planned, data.length / (planned * l.ny * l.nx), l.ny, l.nx];
    return {
      logits: { buffer: uploadF32(device, data, `head ${i}`), offset: 0, shape },
      grad: { buffer: createStorage(device, data.byteLength, `dhead ${i}`), offset: 0, shape },
      layer: l,
    };
  });
  const plan = planLoss(ctx, heads, c.settings, planned, maxTargets);
  plan.setTargets(c.targets, c.bs);
  submitDispatches(device, plan.dispatches);
  const [box, obj, cls, loss] = await readF32(device, plan.items, 4);
  const items = { box, obj, cls, loss };
  assert.equal((await device.popErrorScope())?.message, undefined);
  const ref = referenceLoss(c.heads, c.bs, c.layers, c.targets, c.settings);
  const got = [items.box, items.obj, items.cls];
  for (let i = 0; i < 3; i++) {
    const scale = Math.max(Math.abs(ref.items[i]), 1e-12);
    assert.ok(
      Math.abs(got[i] - ref.items[i]) / scale < GPU_RTOL,
      `item ${i}: gpu ${got[i]} ref ${ref.items[i]}`,
    );
  }
  assert.ok(Math.abs(items.loss - ref.loss) / ref.loss < GPU_RTOL, `loss gpu ${items.loss} ref ${ref.loss}`);
  for (let i = 0; i < heads.length; i++) {
    const l = c.layers[i];
    const g = await readF32(device, heads[i].grad.buffer, c.heads[i].length / c.bs * planned);
    const want = new Float32Array(g.length);
    want.set(toConvLayout(ref.grads[i], c.bs, na, l.ny, l.nx));
    const err = relL2(g, want);
    assert.ok(err < GPU_RTOL, `layer ${i} grad rel L2 ${err}`);
  }
  return items;
}

gpuTest(
  "GPU loss matches the reference on random cases (nc 3, focal, smoothing, duplicates)",
  async (device) => {
    for (const [seed, gamma, smoothing] of [[11, 0, 0], [12, 1.5, 0.1], [13, 0, 0.05]]) {
      const c = randomCase(seed, { nc: 3, bs: 2, grids: [8, 4, 2], nt: 12 });
      // Exact grid-line centres make duplicate cells (last-write-wins objectness).
      c.targets[2] = 0.5;
      c.targets[9] = 0.25;
      c.settings = { ...c.settings, flGamma: gamma, labelSmoothing: smoothing };
      await gpuVsReference(device, c, 16);
    }
  },
);

gpuTest(
  "GPU loss of a short batch ignores the padding images and scales by the real batch size",
  async (device) => {
    const c = randomCase(14, { nc: 3, bs: 2, grids: [8, 4, 2], nt: 6 });
    await gpuVsReference(device, c, 8, 2);
  },
);

gpuTest("GPU loss reproduces the golden iteration-0 items and the reference gradient", async (device) => {
  const sc = scenario(), dbg = debug0();
  const layers = goldenLayers(YOLOV5N_ANCHORS_PX, YOLOV5N_STRIDES);
  const c: LossCase = {
    bs: sc.batch_size,
    layers,
    heads: goldenHeads(),
    targets: goldenTargets(sc.batch_size),
    settings: lossSettings(sc.hyp, 3, 80, sc.imgsz),
  };
  const items = await gpuVsReference(device, c, 8);
  const got = [items.box, items.obj, items.cls];
  for (let i = 0; i < 3; i++) {
    assert.ok(Math.abs(got[i] - dbg.loss_items[i]) / dbg.loss_items[i] < GOLDEN_ITEMS_RTOL);
  }
}, REFERENCE);
