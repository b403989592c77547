import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { bindAll, readF32, uploadF32 } from "../../src/gpu/buffers.ts";

gpuTest("ProgramCache.get() compiles a pipeline once per file, entry point and constants", async (device) => {
  const cache = new ProgramCache(device);
  const a = cache.get("util/scale.wgsl", "main", { WG: 64 });
  assert.equal(cache.get("util/scale.wgsl", "main", { WG: 64 }), a);
  assert.notEqual(cache.get("util/scale.wgsl", "main", { WG: 32 }), a);
  assert.equal(cache.size, 2);
  const x = uploadF32(device, new Float32Array([1, -2, 3, 0.5, 7]), "x");
  const params = device.createBuffer({ size: 16, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  device.queue.writeBuffer(params, 0, new Float32Array([3, 0, 0, 0]));
  device.queue.writeBuffer(params, 4, new Uint32Array([5]));
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(a);
  pass.setBindGroup(0, bindAll(device, a, [x, params]));
  pass.dispatchWorkgroups(1);
  pass.end();
  device.queue.submit([enc.finish()]);
  assert.deepEqual([...(await readF32(device, x, 5))], [3, -6, 9, 1.5, 21]);
});
