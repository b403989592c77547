import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { createStorage, readF32 } from "../../src/gpu/buffers.ts";
import { groupOfRole, type LayoutEntry, layoutLength, type ParamRole } from "../../src/optim/groups.ts";
import { Optimizer } from "../../src/optim/optimizer.ts";
import { clipCoef, type RefHyper, type RefState, refStep } from "./_reference.ts";

/** f32 kernels against a float64 reference over 3 steps: a few ulps of f32 (~1.2e-7 each) at most. */
const REL_TOL = 1e-5;

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** Odd sizes, a frozen tensor, and an unused gap between tensors, as a real layout can have. */
function randomLayout(): LayoutEntry[] {
  const specs: [ParamRole, number, boolean][] = [
    ["weight", 27, false],
    ["bias", 3, false],
    ["norm_weight", 6, false],
    ["weight", 50, true],
    ["bias", 5, false],
    ["weight", 17, false],
  ];
  let offset = 0;
  return specs.map(([role, size, frozen], k) => {
    const e = { name: `t${k}`, shape: [size], offset, size, role, group: groupOfRole(role), frozen };
    offset += Math.ceil(size / 4) * 4 + (k === 2 ? 8 : 0);
    return e;
  });
}

function relErr(actual: Float32Array, expected: number[]): number {
  let num = 0, den = 0;
  expected.forEach((x, k) => {
    num += (actual[k] - x) ** 2;
    den += x * x;
  });
  return Math.sqrt(num / den);
}

/** chunk 1 and 3 spread the small layout over many invocations and workgroups, as on a GPU; 256 is lavapipe's. */
const cases: { kind: RefHyper["kind"]; gradScale: number; chunk: number }[] = [
  { kind: "SGD", gradScale: 1, chunk: 256 },
  { kind: "SGD", gradScale: 10, chunk: 1 },
  { kind: "Adam", gradScale: 1, chunk: 3 },
  { kind: "Adam", gradScale: 10, chunk: 256 },
  { kind: "AdamW", gradScale: 10, chunk: 1 },
];

for (const { kind, gradScale, chunk } of cases) {
  const clipping = gradScale > 1 ? "with clipping" : "without clipping";
  const name =
    `${kind} kernel matches the float64 reference on a random layout ${clipping}, runs of ${chunk}`;
  gpuTest(name, async (device) => {
    const layout = randomLayout();
    const n = layoutLength(layout);
    const rand = rng(kind.length * 7 + gradScale);
    const params = createStorage(device, n * 4, "params");
    const grads = createStorage(device, n * 4, "grads");
    const p0 = new Float32Array(n);
    layout.forEach((e) => {
      for (let k = 0; k < e.size; k++) p0[e.offset + k] = rand();
    });
    device.queue.writeBuffer(params, 0, p0);
    const wd = kind === "AdamW" ? 0.05 : 5e-4;
    const opt = new Optimizer(device, new ProgramCache(device), layout, { params, grads }, {
      kind,
      weightDecay: wd,
      maxGradNorm: 10,
      workgroupSize: 4,
      chunk,
    });
    const ref = layout.map((e) => Array.from(p0.subarray(e.offset, e.offset + e.size)));
    const states: RefState[] = layout.map(() => ({}));
    for (let step = 1; step <= 3; step++) {
      const lr = [0.1 - 0.01 * step, 0.002 * step, 0.003 * step];
      const momentum = kind === "SGD"
        ? [0.8 + 0.01 * step, 0.8 + 0.01 * step, 0.8 + 0.01 * step]
        : [0.937, 0.937, 0.937];
      const g = new Float32Array(n);
      const gt = layout.map((e) => {
        const t = Array.from({ length: e.size }, () => (e.frozen ? 0 : rand() * gradScale));
        g.set(t, e.offset);
        return Array.from(g.subarray(e.offset, e.offset + e.size));
      });
      device.queue.writeBuffer(grads, 0, g);
      const { norm, coef } = clipCoef(gt, 10);
      assert.equal(coef < 1, gradScale > 1, "the case's gradients should (not) be clipped");
      layout.forEach((e, k) => {
        if (e.frozen) return;
        refStep(ref[k], gt[k].map((x) => x * coef), states[k], {
          kind,
          lr: lr[e.group],
          momentum: momentum[e.group],
          wd: e.group === 1 ? wd : 0,
          step,
        });
      });
      const encoder = device.createCommandEncoder();
      opt.step(encoder, { lr, momentum }, { readBack: true });
      device.queue.submit([encoder.finish()]);
      assert.ok(Math.abs((await opt.readStep()).gradNorm - norm) / norm < REL_TOL, `step ${step} grad norm`);
      const got = await readF32(device, params, n);
      layout.forEach((e, k) => {
        const err = relErr(got.subarray(e.offset, e.offset + e.size), ref[k]);
        assert.ok(err < REL_TOL, `step ${step} ${e.name} (${e.role}${e.frozen ? ", frozen" : ""}): ${err}`);
      });
      const gap = layout[2].offset + 8;
      assert.deepEqual(
        [...got.subarray(gap, gap + 8)],
        new Array(8).fill(0),
        "gap between tensors untouched",
      );
      assert.ok((await readF32(device, grads, n)).every((x) => x === 0), "gradients zeroed by the step");
    }
    assert.equal(opt.steps, 3);
  });
}

gpuTest("zeroGrad clears accumulated gradients (epoch-start discard)", async (device) => {
  const layout = randomLayout();
  const n = layoutLength(layout);
  const params = createStorage(device, n * 4, "params");
  const grads = createStorage(device, n * 4, "grads");
  device.queue.writeBuffer(grads, 0, new Float32Array(n).fill(3));
  const opt = new Optimizer(device, new ProgramCache(device), layout, { params, grads }, {
    kind: "SGD",
    weightDecay: 0,
  });
  const encoder = device.createCommandEncoder();
  opt.zeroGrad(encoder);
  device.queue.submit([encoder.finish()]);
  assert.ok((await readF32(device, grads, n)).every((x) => x === 0));
});

gpuTest("Optimizer rejects buffers smaller than the layout", (device) => {
  const layout = randomLayout();
  const small = createStorage(device, 16, "small");
  assert.throws(
    () =>
      new Optimizer(device, new ProgramCache(device), layout, { params: small, grads: small }, {
        kind: "Adam",
        weightDecay: 0,
      }),
    /params buffer has 16 bytes/,
  );
});
