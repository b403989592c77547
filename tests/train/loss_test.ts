import assert from "node:assert/strict";
import { bceWithLogits, ciou, referenceLoss } from "../../src/reference/loss.ts";
import { lossSettings } from "../../src/train/loss_settings.ts";
import type { LossLayer } from "../../src/train/targets.ts";
import {
  debug0,
  goldenHeads,
  goldenLayers,
  goldenTargets,
  scenario,
  YOLOV5N_ANCHORS_PX,
  YOLOV5N_STRIDES,
} from "./_golden.ts";
import { randomCase } from "./_cases.ts";

/** Acceptance bound for loss items vs PyTorch (issue 4); the float64 reference is expected near 1e-6. */
const GOLDEN_ITEMS_RTOL = 1e-3;
/** Central differences with h = 1e-4 in float64 on smooth pieces: truncation error ~h^2 * f''' is far below. */
const FD_STEP = 1e-4;
const FD_RTOL = 1e-5;

Deno.test("referenceLoss reproduces PyTorch's iteration-0 loss items from the golden raw heads", () => {
  const sc = scenario(), dbg = debug0();
  const settings = lossSettings(sc.hyp, 3, 80, sc.imgsz);
  const layers = goldenLayers(YOLOV5N_ANCHORS_PX, YOLOV5N_STRIDES);
  const r = referenceLoss(goldenHeads(), sc.batch_size, layers, goldenTargets(sc.batch_size), settings);
  for (let i = 0; i < 3; i++) {
    const rel = Math.abs(r.items[i] - dbg.loss_items[i]) / dbg.loss_items[i];
    assert.ok(rel < GOLDEN_ITEMS_RTOL, `item ${i}: ${r.items[i]} vs ${dbg.loss_items[i]} (rel ${rel})`);
  }
  assert.ok(Math.abs(r.loss - dbg.loss) / dbg.loss < GOLDEN_ITEMS_RTOL, `loss ${r.loss} vs ${dbg.loss}`);
});

function fdCheck(gamma: number, smoothing: number, seed: number) {
  const c = randomCase(seed, { nc: 3, bs: 2, grids: [4, 2], nt: 5 });
  const settings = { ...c.settings, flGamma: gamma, labelSmoothing: smoothing };
  const heads = c.heads.map((h) => Float64Array.from(h));
  const base = referenceLoss(heads, c.bs, c.layers, c.targets, settings);
  const eval64 = (hs: Float64Array[]) => referenceLoss(hs, c.bs, c.layers, c.targets, settings, base.alphas);
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
