import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { GpuMemory } from "../../src/gpu/memory.ts";
import { createStorage, readF32 } from "../../src/gpu/buffers.ts";
import { uploadF32 } from "../_helpers/buffers.ts";
import { SumOfSquares } from "../../src/gpu/reduce.ts";
import { streamChunk, streamPlan } from "../../src/gpu/runs.ts";

/** f32 tree sums of ~1e5 terms against float64: the error grows like log2(n) ulps, far below this. */
const REL_TOL = 1e-6;

Deno.test("streamPlan covers every vec4 and grows the run length past 65535 workgroups", () => {
  assert.deepEqual(streamPlan(1, 64, 256), { chunk: 256, workgroups: 1 });
  assert.deepEqual(streamPlan(64 * 256 + 1, 64, 256), { chunk: 256, workgroups: 2 });
  assert.deepEqual(streamPlan(2.5e6, 64, 1), { chunk: 1, workgroups: 39063 });
  assert.deepEqual(streamPlan(1e7, 64, 1), { chunk: 4, workgroups: 39063 });
  assert.deepEqual([streamChunk(true), streamChunk(false)], [256, 1]);
});

for (const [n4, chunk] of [[1, 256], [37, 256], [25_000, 1], [25_000, 16]]) {
  gpuTest(
    `SumOfSquares over ${n4} vec4s (runs of ${chunk}) matches float64`,
    async (device) => {
      const x = Float32Array.from({ length: n4 * 4 }, (_, k) => Math.sin(k * 0.37) * (1 + (k % 7)));
      const src = uploadF32(device, x, "x");
      const out = createStorage(device, 16, "out");
      const sum = new SumOfSquares(new GpuMemory(device), new ProgramCache(device), src, n4, out, 2, chunk);
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      sum.encode(pass);
      pass.end();
      device.queue.submit([encoder.finish()]);
      const expected = x.reduce((s, v) => s + v * v, 0);
      const got = (await readF32(device, out, 4))[2];
      assert.ok(Math.abs(got - expected) / expected < REL_TOL, `${got} vs ${expected}`);
    },
  );
}
