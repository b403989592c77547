import assert from "node:assert/strict";
import {
  accumulate0,
  type Hyp,
  interp,
  lrLambda,
  roundHalfEven,
  scaledWeightDecay,
  Schedule,
  warmupAccumulate,
  warmupIterations,
} from "../../src/optim/schedule.ts";
import type { OptimizerName } from "../../src/optim/groups.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "golden/finetune-sgd/", "golden/optimizer/");
const SHARED = REFERENCE.url("golden/");
const HYP: Hyp = SCRATCH_LOW;

Deno.test("roundHalfEven rounds ties to even like Python round / np.round", () => {
  assert.deepEqual([0.5, 1.5, 2.5, 3.5, -2.5, 2.4999, 2.6, 2.667].map(roundHalfEven), [
    0,
    2,
    2,
    4,
    -2,
    2,
    3,
    3,
  ]);
});

Deno.test("accumulate0 and scaled weight decay follow the docs/training.md §3.1 table", () => {
  const table: [number, number, number][] = [
    [1, 64, 5e-4],
    [8, 8, 5e-4],
    [16, 4, 5e-4],
    [24, 3, 5.625e-4],
    [
      40,
      2,
      6.25e-4,
    ],
    [48, 1, 3.75e-4],
    [128, 1, 1e-3],
  ];
  for (const [bs, acc, wd] of table) {
    assert.equal(accumulate0(bs), acc, `bs ${bs}`);
    assert.ok(Math.abs(scaledWeightDecay(5e-4, bs) - wd) < 1e-18, `bs ${bs}: ${scaledWeightDecay(5e-4, bs)}`);
  }
});

Deno.test("interp returns exact endpoints and clamps like np.interp", () => {
  assert.equal(interp(0, [0, 100], [0.1, 0.01]), 0.1);
  assert.equal(interp(100, [0, 100], [0.1, 0.01]), 0.01);
  assert.equal(interp(150, [0, 100], [0.1, 0.01]), 0.01);
  assert.equal(interp(50, [0, 100], [1, 4]), 2.5);
});

Deno.test("warmup accumulate for bs 16, nw 100 rounds 2.5 to 2 at ni 50 (half-to-even)", () => {
  const acc = Array.from({ length: 101 }, (_, ni) => warmupAccumulate(ni, 100, 16));
  const first = (v: number) => acc.indexOf(v);
  assert.deepEqual([first(1), first(2), first(3), first(4)], [0, 17, 51, 84]);
  assert.equal(acc[50], 2);
  assert.equal(warmupIterations(3, 30), 100);
  assert.equal(warmupIterations(3, 40), 120);
  assert.equal(warmupIterations(0.5, 60), 100);
});

Deno.test("linear lf after warmup: epochs 0..4 train at 0.01, 0.01, 0.00802, 0.00604, 0.00406 (docs/training.md §11.3)", () => {
  // warmup_epochs 0 leaves nw at its floor of 100, which ends inside epoch 0 when nb = 200.
  const hyp = { ...HYP, warmup_epochs: 0 };
  const s = new Schedule({ optimizer: "SGD", hyp, batchSize: 16, nb: 200, epochs: 5, cosLr: false });
  const lrs: number[] = [];
  for (let e = 0; e < 5; e++) {
    for (let i = 0; i < 200; i++) {
      const it = s.iteration(e, i);
      if (i === 150) lrs.push(it.lr[0]);
    }
    s.endEpoch(e);
  }
  const lf = lrLambda(false, 5, 0.01);
  assert.deepEqual(lrs, [0.01 * lf(0), 0.01 * lf(0), 0.01 * lf(1), 0.01 * lf(2), 0.01 * lf(3)]);
  assert.deepEqual(lrs.map((x) => Number(x.toFixed(8))), [0.01, 0.01, 0.00802, 0.00604, 0.00406]);
});

Deno.test("warmup trace bs 16, nb 30, nw 100: steps and the epoch-boundary discard (docs/training.md §3.4, §11.2)", () => {
  const s = new Schedule({ optimizer: "SGD", hyp: HYP, batchSize: 16, nb: 30, epochs: 10, cosLr: false });
  const steps: number[] = [];
  const batchesPerStep = new Map<number, number[]>();
  let pending: number[] = [];
  for (let e = 0; e < 6; e++) {
    for (let i = 0; i < 30; i++) {
      const it = s.iteration(e, i);
      if (it.zeroGradFirst) pending = [];
      pending.push(it.ni);
      if (it.stepped) {
        steps.push(it.ni);
        batchesPerStep.set(it.ni, pending);
        pending = [];
      }
      const target = 0.01 * s.lf(e);
      if (it.ni <= 100) {
        assert.ok(Math.abs(it.lr[0] - (0.1 + (target - 0.1) * it.ni / 100)) < 1e-15, `bias lr at ${it.ni}`);
        assert.ok(Math.abs(it.lr[1] - target * it.ni / 100) < 1e-15, `weight lr at ${it.ni}`);
      }
    }
    s.endEpoch(e);
  }
  const range = (a: number, b: number, step: number) =>
    Array.from({ length: Math.floor((b - a) / step) + 1 }, (_, k) => a + k * step);
  const expected = [...range(0, 16, 1), ...range(18, 50, 2), ...range(53, 83, 3), ...range(87, 179, 4)];
  assert.deepEqual(steps, expected);
  assert.deepEqual(batchesPerStep.get(147), [144, 145, 146, 147]);
  assert.deepEqual(batchesPerStep.get(151), [150, 151]);
  assert.deepEqual(batchesPerStep.get(91), [90, 91]);
});

Deno.test("Adam keeps beta1 (reported as momentum) out of warmup", () => {
  const s = new Schedule({ optimizer: "Adam", hyp: HYP, batchSize: 32, nb: 40, epochs: 4, cosLr: false });
  assert.deepEqual(s.iteration(0, 5).momentum, [0.937, 0.937, 0.937]);
});

interface GoldenIteration {
  ni: number;
  epoch: number;
  accumulate: number;
  stepped: boolean;
  lr: number[];
  momentum: number[];
}

function replay(s: Schedule, iterations: GoldenIteration[], nb: number, label: string): void {
  let epoch = 0;
  for (const g of iterations) {
    if (g.epoch !== epoch) s.endEpoch(epoch++);
    const it = s.iteration(g.epoch, g.ni - nb * g.epoch);
    const at = `${label} ni ${g.ni}`;
    assert.equal(it.ni, g.ni, at);
    assert.equal(it.accumulate, g.accumulate, at);
    assert.equal(it.stepped, g.stepped, at);
    assert.deepEqual(it.lr, g.lr, at);
    assert.deepEqual(it.momentum, g.momentum, at);
  }
}

referenceTest(REFERENCE, "Schedule reproduces the finetune-sgd golden trace exactly", async () => {
  const dir = new URL("finetune-sgd/", SHARED);
  const scenario = JSON.parse(await Deno.readTextFile(new URL("scenario.json", dir)));
  const final = JSON.parse(await Deno.readTextFile(new URL("final.json", dir)));
  const trace = (await Deno.readTextFile(new URL("trace.jsonl", dir))).trim().split("\n").map((l) =>
    JSON.parse(l) as GoldenIteration & { i: number }
  );
  const s = new Schedule({
    optimizer: scenario.optimizer,
    hyp: scenario.hyp,
    batchSize: scenario.batch_size,
    nb: final.nb,
    epochs: scenario.epochs,
    cosLr: scenario.cos_lr,
    nbs: scenario.nbs,
  });
  assert.equal(s.nw, final.nw);
  replay(s, trace, final.nb, "finetune-sgd");
});

for (const name of ["adam_linear", "adamw_cosine_clipped", "sgd_cosine_accumulate", "sgd_short_warmup_ema"]) {
  referenceTest(
    REFERENCE,
    `Schedule reproduces the ${name} golden lr/momentum/accumulate/stepped`,
    async () => {
      const golden = JSON.parse(await Deno.readTextFile(new URL(`optimizer/${name}.json`, SHARED)));
      const s = new Schedule({
        optimizer: golden.optimizer as OptimizerName,
        hyp: golden.hyp,
        batchSize: golden.batch_size,
        nb: golden.iterations_per_epoch,
        epochs: golden.epochs,
        cosLr: golden.cos_lr,
        nbs: golden.nbs,
      });
      assert.equal(s.weightDecay, golden.weight_decay_effective_at_start);
      replay(s, golden.iterations, golden.iterations_per_epoch, name);
    },
  );
}
