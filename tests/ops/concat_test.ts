import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { channelSlice, planConcat, planSplit } from "../../src/ops/concat.ts";
import { concatChannels, splitChannels } from "../../src/reference/ops/concat.ts";
import {
  checkFiniteDifferences,
  dot,
  opContext,
  place,
  randomArray,
  readPlaced,
  rng,
  run,
} from "./_helpers.ts";

const N = 2, H = 3, W = 5, PLANE = H * W;
const CHANNELS = [2, 3, 4];
const TOTAL = 9;

gpuTest(
  "planConcat copies inputs into channel slices and routes dy slices back (exact copies)",
  async (device) => {
    const rand = rng(31);
    const xs = CHANNELS.map((c) => randomArray(N * c * PLANE, rand));
    const dy = randomArray(N * TOTAL * PLANE, rand);
    const old = randomArray(N * CHANNELS[1] * PLANE, rand);
    const X = CHANNELS.map((c, i) => place(device, [N, c, H, W], xs[i], { offset: i + 1 }));
    const Y = place(device, [N, TOTAL, H, W], undefined, { offset: 3, fill: 9 });
    const DY = place(device, [N, TOTAL, H, W], dy, { offset: 2 });
    const DX = CHANNELS.map((c, i) =>
      place(device, [N, c, H, W], i === 1 ? old : undefined, { offset: 2 * i })
    );
    const p = planConcat(opContext(device), {
      inputs: X.map((x) => x.view),
      y: Y.view,
      dy: DY.view,
      dinputs: DX.map((d) => d.view),
      accumulate: [false, true, false],
    });
    await run(device, [...p.forward, ...p.backward]);
    const y = await readPlaced(device, Y);
    assert.deepEqual([...y.inside], [...Float32Array.from(concatChannels(xs, CHANNELS, N, PLANE))]);
    assert.ok(y.outside.every((d) => d === 0), "concat wrote outside y");
    const want = splitChannels(Float32Array.from(dy), CHANNELS, N, PLANE);
    for (const [i, d] of DX.entries()) {
      const got = (await readPlaced(device, d)).inside;
      const expect = i === 1
        ? Float32Array.from(want[i], (v, j) => v + Math.fround(old[j]))
        : Float32Array.from(want[i]);
      assert.deepEqual([...got], [...expect], `dinput ${i}`);
    }
  },
);

gpuTest(
  "planSplit copies channel slices out and writes gradients into the matching slices of dx",
  async (device) => {
    const rand = rng(32);
    const x = randomArray(N * TOTAL * PLANE, rand);
    const douts = CHANNELS.map((c) => randomArray(N * c * PLANE, rand));
    const X = place(device, [N, TOTAL, H, W], x, { offset: 1 });
    const Ys = CHANNELS.map((c, i) => place(device, [N, c, H, W], undefined, { offset: i }));
    const DYs = CHANNELS.map((c, i) => place(device, [N, c, H, W], douts[i], { offset: 3 - i }));
    const DX = place(device, [N, TOTAL, H, W], undefined, { offset: 2, fill: 4 });
    const p = planSplit(opContext(device), {
      x: X.view,
      outputs: Ys.map((y) => y.view),
      douts: DYs.map((d) => d.view),
      dx: DX.view,
    });
    await run(device, [...p.forward, ...p.backward]);
    const want = splitChannels(Float32Array.from(x), CHANNELS, N, PLANE);
    for (const [i, y] of Ys.entries()) {
      assert.deepEqual([...(await readPlaced(device, y)).inside], [
        ...Float32Array.from(want[i]),
      ]);
    }
    const dx = await readPlaced(device, DX);
    assert.deepEqual([...dx.inside], [...Float32Array.from(concatChannels(douts, CHANNELS, N, PLANE))]);
    assert.ok(dx.outside.every((d) => d === 0), "split backward wrote outside dx");
  },
);

Deno.test("channelSlice views the channel range of the same buffer with the parent's batch stride", () => {
  const buffer = {} as GPUBuffer;
  const v = channelSlice({ buffer, offset: 8, shape: [2, 9, 3, 5] }, 2, 3);
  assert.deepEqual(v, { buffer, offset: 8 + 2 * 15, shape: [2, 3, 3, 5], batchStride: 9 * 15 });
  assert.throws(() => channelSlice(v, 2, 2), /outside \[0, 3\)/);
});

Deno.test("reference concat gradient (split of dy) matches central differences", () => {
  const rand = rng(33);
  const xs = CHANNELS.map((c) => randomArray(N * c * PLANE, rand));
  const dy = randomArray(N * TOTAL * PLANE, rand);
  const grads = splitChannels(dy, CHANNELS, N, PLANE);
  xs.forEach((x, i) => {
    checkFiniteDifferences(
      x,
      grads[i],
      () => dot(concatChannels(xs, CHANNELS, N, PLANE), dy),
      `concat d${i}`,
    );
  });
});
