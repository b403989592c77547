import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { uploadF32 } from "../_helpers/buffers.ts";
import { Ema } from "../../src/optim/ema.ts";

/** f32 update of values ~1 against a float64 reference: a few ulps. */
const REL_TOL = 1e-6;

gpuTest(
  "EMA decay follows d_k = 0.9999 (1 - exp(-k/2000)) with k counted from 1 (docs/training.md §5, §11.5)",
  (device) => {
    const ema = new Ema(device, new ProgramCache(device), []);
    assert.ok(Math.abs(ema.decayAt(1) - 4.99825e-4) < 1e-9);
    assert.ok(Math.abs(ema.decayAt(2000) - 0.63206) < 1e-5);
    assert.ok(Math.abs(ema.decayAt(10000) - 0.9932) < 1e-4);
  },
);

gpuTest(
  "EMA update averages every source buffer (params and running stats) against a reference",
  async (device) => {
    const sizes = [13, 6];
    const models = sizes.map((n, s) => Float32Array.from({ length: n }, (_, k) => Math.sin(k + 10 * s)));
    const buffers = models.map((m, s) => uploadF32(device, m, `src${s}`));
    const ema = new Ema(
      device,
      new ProgramCache(device),
      buffers.map((buffer, s) => ({ buffer, size: sizes[s], label: `src${s}` })),
      { decay: 0.99, tau: 20 },
    );
    const ref = models.map((m) => Array.from(m));
    for (let step = 1; step <= 4; step++) {
      models.forEach((m, s) => {
        for (let k = 0; k < m.length; k++) m[k] += 0.1 * Math.cos(step * k + s);
        device.queue.writeBuffer(buffers[s], 0, m);
        const d = 0.99 * (1 - Math.exp(-step / 20));
        ref[s] = ref[s].map((e, k) => d * e + (1 - d) * m[k]);
      });
      const encoder = device.createCommandEncoder();
      ema.update(encoder);
      device.queue.submit([encoder.finish()]);
    }
    assert.equal(ema.updates, 4);
    for (let s = 0; s < sizes.length; s++) {
      const got = await readF32(device, ema.buffers[s], sizes[s]);
      ref[s].forEach((x, k) =>
        assert.ok(Math.abs(got[k] - x) <= REL_TOL * Math.max(1, Math.abs(x)), `src${s}[${k}]`)
      );
    }
  },
);
