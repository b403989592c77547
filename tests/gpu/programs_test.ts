import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { bindBuffers, readF32 } from "../../src/gpu/buffers.ts";
import { createUniform, uploadF32 } from "../_helpers/buffers.ts";

gpuTest("ProgramCache.get() compiles a pipeline once per file, entry point and constants", async (device) => {
  const cache = new ProgramCache(device);
  const a = cache.get("optim/ema.wgsl", "main", { WG: 64, CHUNK: 2 });
  assert.equal(cache.get("optim/ema.wgsl", "main", { WG: 64, CHUNK: 2 }), a);
  assert.notEqual(cache.get("optim/ema.wgsl", "main", { WG: 32, CHUNK: 2 }), a);
  assert.equal(cache.size, 2);
  // ema = d*ema + (1-d)*model over n4 = 2 vec4s (d = 0.5: exact in float32); the 9th float is past n4.
  const ema = uploadF32(device, Float32Array.from({ length: 9 }, (_, k) => k), "ema");
  const model = uploadF32(device, Float32Array.from({ length: 9 }, (_, k) => 2 - k), "model");
  const params = new DataView(new ArrayBuffer(16));
  [0.5, 0.5].forEach((f, k) => params.setFloat32(4 * k, f, true));
  params.setUint32(8, 2, true);
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(a);
  pass.setBindGroup(0, bindBuffers(device, a, [ema, model, createUniform(device, params.buffer, "params")]));
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([enc.finish()]);
  assert.deepEqual([...(await readF32(device, ema, 9))], [1, 1, 1, 1, 1, 1, 1, 1, 8]);
});

gpuTest(
  "ProgramCache.get() compiles a Lane-typed module once per lane type, and names the lane",
  (device) => {
    const cache = new ProgramCache(device);
    const scalar = cache.get("ops/binary.wgsl", "forward", { WG: 64 }, "f32", "f32");
    const wide = cache.get("ops/binary.wgsl", "forward", { WG: 64 }, "f32", "vec4f");
    assert.notEqual(scalar, wide);
    assert.equal(cache.get("ops/binary.wgsl", "forward", { WG: 64 }, "f32", "vec4f"), wide);
    assert.equal(cache.size, 2);
    assert.equal(scalar.label, "ops/binary.wgsl:forward (f32)");
    assert.equal(wide.label, "ops/binary.wgsl:forward (vec4f)");
  },
);
