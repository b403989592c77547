// The golden optimizer test feeds each iteration's gradients as a backward would: ADDED into the flat grads
// buffer inside the iteration's encoder, so accumulation and the optimizer's zero_grad interact as in training.
// The kernel lives here because only that test needs it.
import { bindBuffers } from "../../src/gpu/buffers.ts";
import { createUniform } from "../_helpers/buffers.ts";

const WG = 64;
const CODE = `
struct Params { n4: u32, _p0: u32, _p1: u32, _p2: u32 }
@group(0) @binding(0) var<storage, read_write> y: array<vec4f>;
@group(0) @binding(1) var<storage, read> x: array<vec4f>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3u) {
  if (gid.x < p.n4) {
    y[gid.x] = y[gid.x] + x[gid.x];
  }
}`;

/** Records y += x over the first `n4` vec4s into a compute pass. */
export function vec4Accumulator(
  device: GPUDevice,
  y: GPUBuffer,
  x: GPUBuffer,
  n4: number,
): (pass: GPUComputePassEncoder) => void {
  const pipeline = device.createComputePipeline({
    label: "test accumulate",
    layout: "auto",
    compute: {
      module: device.createShaderModule({ label: "test accumulate", code: CODE }),
      entryPoint: "main",
    },
  });
  const group = bindBuffers(device, pipeline, [
    y,
    x,
    createUniform(device, new Uint32Array([n4, 0, 0, 0]).buffer, "n4"),
  ]);
  return (pass) => {
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(n4 / WG));
  };
}
