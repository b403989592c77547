// GpuMemory: the owner that counts, reuses and destroys a component's GPU buffers.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { GpuMemory, liveGpuBytes } from "../../src/gpu/memory.ts";

gpuTest(
  "GpuMemory counts its bytes, reuses a released buffer zero-filled, and destroy() frees them all",
  async (device) => {
    const baseline = liveGpuBytes();
    const memory = new GpuMemory(device);
    const a = memory.upload(new Float32Array([1, 2, 3, 4, 5]), "a"); // 20 bytes -> 32
    const u = memory.uniform(new Uint32Array([7]).buffer, "u"); // 4 bytes -> 16
    const r = memory.readback(8, "r");
    assert.deepEqual([a.size, u.size, r.size], [32, 16, 8]);
    assert.equal(memory.bytes, 56);
    assert.equal(liveGpuBytes(), baseline + 56);

    memory.release(a);
    const b = memory.storage(17, "b"); // same rounded size and usage: the released buffer, cleared
    assert.equal(b, a);
    assert.deepEqual([...(await readF32(device, b, 8))], [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(memory.bytes, 56, "a reused buffer adds nothing");
    memory.release(b);
    assert.throws(() => memory.release(b), /not a live buffer/);

    memory.destroy();
    assert.equal(memory.bytes, 0);
    assert.equal(liveGpuBytes(), baseline);
    assert.throws(() => memory.storage(16, "late"), /after destroy/);
  },
);
