/**
 * A Web Worker that holds what a training worker holds at its end: the WebGPU device Kestrel computes on (src/gpu/
 * device.ts), a storage buffer and a compute pipeline, with a dispatch run to completion. Posts "ready" then.
 * @module
 */
import { getGpu } from "../../src/gpu/device.ts";

const port = self as unknown as { postMessage(message: string): void };

const { device } = await getGpu();
const code = `@group(0) @binding(0) var<storage, read_write> values: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) id: vec3u) { values[id.x] = values[id.x] * 2.0 + 1.0; }`;
const pipeline = device.createComputePipeline({
  layout: "auto",
  compute: { module: device.createShaderModule({ code }), entryPoint: "main" },
});
const count = 1 << 16;
const buffer = device.createBuffer({ size: count * 4, usage: GPUBufferUsage.STORAGE });
const encoder = device.createCommandEncoder();
const pass = encoder.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(
  0,
  device.createBindGroup({
    layout: pipeline.getBindGroupLayout(0),
    entries: [{ binding: 0, resource: { buffer } }],
  }),
);
pass.dispatchWorkgroups(count / 64);
pass.end();
device.queue.submit([encoder.finish()]);
await device.queue.onSubmittedWorkDone();
port.postMessage("ready");
