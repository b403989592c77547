import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { planBatchNorm } from "../../src/ops/batchnorm.ts";
import {
  batchNormBackward,
  batchNormEval,
  batchNormForward,
  type BnShape,
} from "../../src/reference/ops/batchnorm.ts";
import {
  assertClose,
  assertUntouched,
  checkFiniteDifferences,
  dot,
  opContext,
  place,
  type Placed,
  randomArray,
  readPlaced,
  rng,
  run,
} from "./_helpers.ts";

/** Per-channel f32 sums over N*H*W = 70 values feed every output: sqrt(70) * 6e-8 growth of the sums' rounding,
 * amplified up to ~10x by the normalisation's 1/std with O(1) inputs: 1e-5 of the largest magnitude. */
const F32_BATCH_SUM_TOL = 1e-5;
/** YOLOv5's BatchNorm2d settings (models/common.py sets eps 1e-3, momentum 0.03). */
const EPS = 1e-3;
const MOMENTUM = 0.03;

const S: BnShape = { n: 2, c: 3, plane: 5 * 7 };
const SHAPE = [2, 3, 5, 7];

/** A train-mode case's inputs, drawn in this order from `rand`: x, gamma, beta, running stats, dy. */
function trainInputs(rand: () => number) {
  const x = randomArray(2 * 3 * 35, () => 2 * rand() + 0.5);
  const gamma = randomArray(3, rand), beta = randomArray(3, rand);
  const rm = randomArray(3, rand), rv = randomArray(3, () => 1 + rand() / 2);
  return { x, gamma, beta, rm, rv, dy: randomArray(x.length, rand) };
}

/** Where a train-mode case's tensors lie: x, y, dy, dx placements, and the old dx and parameter gradients. */
interface TrainPlacement {
  x?: Parameters<typeof place>[3];
  y?: Parameters<typeof place>[3];
  dy?: Parameters<typeof place>[3];
  dx?: Parameters<typeof place>[3];
  dxOld?: ArrayLike<number>;
  gradsOld?: ArrayLike<number>;
}

/**
 * Places a train-mode case (params and running stats as [3 channels, 1 pad] x 2 flat buffers, like the flat
 * layouts) and plans it; gradients are added to the old ones where given.
 */
function planTrainMode(device: GPUDevice, inp: ReturnType<typeof trainInputs>, at: TrainPlacement) {
  const X = place(device, SHAPE, inp.x, at.x);
  const Y = place(device, SHAPE, undefined, at.y);
  const params = place(device, [8], [...inp.gamma, 0, ...inp.beta, 0]);
  const running = place(device, [8], [...inp.rm, 0, ...inp.rv, 0]);
  const grads = place(device, [8], at.gradsOld);
  const DY = place(device, SHAPE, inp.dy, at.dy);
  const DX = place(device, SHAPE, at.dxOld, at.dx);
  const view = (p: typeof params, offset: number) => ({ buffer: p.view.buffer, offset, shape: [3] });
  const plan = planBatchNorm(opContext(device), {
    x: X.view,
    y: Y.view,
    gamma: view(params, 0),
    beta: view(params, 4),
    runningMean: view(running, 0),
    runningVar: view(running, 4),
    eps: EPS,
    momentum: MOMENTUM,
    dy: DY.view,
    dx: DX.view,
    dgamma: view(grads, 0),
    dbeta: view(grads, 4),
    accumulate: at.gradsOld !== undefined,
  });
  return { plan, Y, running, grads, DX };
}

/** The running mean and variance after one train-mode forward against the reference's. */
async function assertRunningStats(
  device: GPUDevice,
  running: Placed,
  ref: { runMean: Iterable<number>; runVar: Iterable<number> },
): Promise<void> {
  const r = (await readPlaced(device, running)).inside;
  assertClose(
    [...r.slice(0, 3), ...r.slice(4, 7)],
    [...ref.runMean, ...ref.runVar],
    F32_BATCH_SUM_TOL,
    "running",
  );
}

gpuTest(
  "planBatchNorm train-mode forward, running stats and backward match the reference",
  async (device) => {
    const rand = rng(61);
    const inp = trainInputs(rand);
    const { x, gamma, beta, rm, rv, dy } = inp;
    const dxOld = randomArray(x.length, rand);
    const gOld = randomArray(8, rand);
    const { plan: p, Y, running, grads, DX } = planTrainMode(device, inp, {
      x: { offset: 3, batchStride: 4 * 35, fill: 9 },
      y: { offset: 1, fill: 7 },
      dy: { offset: 2 },
      dx: { offset: 5, batchStride: 3 * 35 + 1, fill: 4 },
      dxOld,
      gradsOld: gOld,
    });
    await run(device, [...p.forward, ...p.backward]);
    const ref = batchNormForward(S, x, gamma, beta, EPS, { mean: rm, variance: rv, momentum: MOMENTUM });
    const y = await readPlaced(device, Y);
    assertClose(y.inside, ref.y, F32_BATCH_SUM_TOL, "y");
    assertUntouched(y.outside, "y");
    await assertRunningStats(device, running, ref);
    const g = batchNormBackward(S, x, gamma, dy, EPS);
    const dx = await readPlaced(device, DX);
    assertClose(dx.inside, g.dx.map((v, i) => v + dxOld[i]), F32_BATCH_SUM_TOL, "dx (accumulated)");
    assertUntouched(dx.outside, "dx");
    const gr = (await readPlaced(device, grads)).inside;
    const want = [...g.dgamma, 0, ...g.dbeta, 0].map((v, i) => v + gOld[i]);
    assertClose(gr, want, F32_BATCH_SUM_TOL, "dgamma, dbeta (added)");
  },
);

/** No batch sums in evaluation mode: one f32 multiply-add chain per element, a few ulps of O(1) values. */
const F32_ELEMENTWISE_TOL = 1e-6;

gpuTest(
  "planBatchNorm evaluation mode normalises with the running stats and leaves them alone",
  async (device) => {
    const rand = rng(63);
    const x = randomArray(2 * 3 * 35, () => 2 * rand() + 0.5);
    const gamma = randomArray(3, rand), beta = randomArray(3, rand);
    const rm = randomArray(3, rand), rv = randomArray(3, () => 0.5 + rand());
    const X = place(device, SHAPE, x, { offset: 3, batchStride: 4 * 35, fill: 9 });
    const Y = place(device, SHAPE, undefined, { offset: 1, batchStride: 3 * 35 + 2, fill: 7 });
    const params = place(device, [8], [...gamma, 0, ...beta, 0]);
    const running = place(device, [8], [0, ...rm, 0, ...rv]);
    const view = (p: typeof params, offset: number) => ({ buffer: p.view.buffer, offset, shape: [3] });
    const p = planBatchNorm(opContext(device), {
      x: X.view,
      y: Y.view,
      gamma: view(params, 0),
      beta: view(params, 4),
      runningMean: view(running, 1),
      runningVar: view(running, 5),
      eps: EPS,
      momentum: MOMENTUM,
      training: false,
    });
    assert.equal(p.backward.length, 0);
    await run(device, p.forward);
    const y = await readPlaced(device, Y);
    assertClose(y.inside, batchNormEval(S, x, gamma, beta, rm, rv, EPS), F32_ELEMENTWISE_TOL, "y");
    assertUntouched(y.outside, "y");
    const r = await readPlaced(device, running);
    assertClose(r.inside, running.initial.subarray(0, 8), 0, "running stats");
  },
);

gpuTest(
  "planBatchNorm setCount: a short batch's statistics cover only its items, padding gets dx 0",
  async (device) => {
    const inp = trainInputs(rng(64));
    const { x, gamma, beta, rm, rv, dy } = inp;
    const { plan: p, Y, running, grads, DX } = planTrainMode(device, inp, { dx: { fill: 5 } });
    p.setCount(1);
    await run(device, [...p.forward, ...p.backward]);
    const one: BnShape = { ...S, n: 1 }, first = x.subarray(0, 3 * 35), dyFirst = dy.subarray(0, 3 * 35);
    const ref = batchNormForward(one, first, gamma, beta, EPS, {
      mean: rm,
      variance: rv,
      momentum: MOMENTUM,
    });
    assertClose((await readPlaced(device, Y)).inside.subarray(0, 3 * 35), ref.y, F32_BATCH_SUM_TOL, "y");
    await assertRunningStats(device, running, ref);
    const g = batchNormBackward(one, first, gamma, dyFirst, EPS);
    const dx = (await readPlaced(device, DX)).inside;
    assertClose(dx, [...g.dx, ...new Array(3 * 35).fill(0)], F32_BATCH_SUM_TOL, "dx (padding item zero)");
    const gr = (await readPlaced(device, grads)).inside;
    assertClose(gr, [...g.dgamma, 0, ...g.dbeta, 0], F32_BATCH_SUM_TOL, "dgamma, dbeta");
    assert.throws(() => p.setCount(3), /covers 1\.\.2 batch items/);
  },
);

Deno.test("reference batch-norm backward matches central differences (through the batch statistics)", () => {
  const rand = rng(62);
  const x = randomArray(2 * 3 * 35, rand);
  const gamma = randomArray(3, rand), beta = randomArray(3, rand), dy = randomArray(x.length, rand);
  const g = batchNormBackward(S, x, gamma, dy, EPS);
  const loss = () => dot(batchNormForward(S, x, gamma, beta, EPS).y, dy);
  checkFiniteDifferences(x, g.dx, loss, "bn dx");
  checkFiniteDifferences(gamma, g.dgamma, loss, "bn dgamma");
  checkFiniteDifferences(beta, g.dbeta, loss, "bn dbeta");
});
