// The f16 copy amp's convs read (src/ops/cast.ts over wgsl/ops/cast.wgsl with the f16 prelude): IEEE rounding
// to nearest for what f16 can hold, and +inf for anything past it, inf or NaN (src/gpu/wgsl.ts toElem4), which
// the overflow check then catches.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { planCast } from "../../src/ops/cast.ts";
import { opContext, rng, run } from "./_helpers.ts";

for (const chunk of [1, 256]) {
  gpuTest(
    `planCast to f16 rounds like Math.f16round and turns out-of-range values into inf (runs of ${chunk})`,
    async (device) => {
      const rand = rng(chunk);
      const special = [1 / 3, 65504, 65519, 65520, -65520, 1e9, 5e-8, 3e-8, Infinity, -Infinity, NaN, 0];
      const n = 4 * 257;
      const src = new Float32Array(n).map(() => (rand() - 0.5) * 200);
      src.set(special, 100);
      const buffer = device.createBuffer({
        size: n * 4,
        usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
      });
      device.queue.writeBuffer(buffer, 0, src);
      const cast = planCast(opContext(device), buffer, n, "f16", "test cast", chunk);
      await run(device, [cast.dispatch]);
      const staging = device.createBuffer({
        size: n * 2,
        usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
      });
      const encoder = device.createCommandEncoder();
      encoder.copyBufferToBuffer(cast.buffer, 0, staging, 0, n * 2);
      device.queue.submit([encoder.finish()]);
      await staging.mapAsync(GPUMapMode.READ);
      const got = new Float16Array(staging.getMappedRange().slice(0));
      staging.unmap();
      const want = Array.from(src, (v) => {
        const h = Math.f16round(v);
        return Number.isFinite(h) ? h : Infinity;
      });
      // Subnormal halves may be flushed to zero by the adapter; everything else is exact.
      const flushed = (k: number) => got[k] === 0 && Math.abs(want[k]) < 2 ** -14;
      want.forEach((w, k) =>
        assert.ok(Object.is(got[k], w) || flushed(k), `element ${k}: ${src[k]} -> ${got[k]}, want ${w}`)
      );
      assert.equal(got[103], Infinity, "65520 rounds to inf");
      assert.equal(got[102], 65504, "65519 rounds to f16's largest value");
    },
  );
}
