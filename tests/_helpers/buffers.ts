// Buffers tests set up by hand, outside any GpuMemory owner (the test device lives for the whole run).
import { createStorage } from "../../src/gpu/buffers.ts";

/** A storage buffer initialised with `data`. */
export function uploadF32(device: GPUDevice, data: Float32Array, label: string): GPUBuffer {
  const buffer = createStorage(device, data.byteLength, label);
  device.queue.writeBuffer(buffer, 0, data as Float32Array<ArrayBuffer>);
  return buffer;
}

/** A uniform buffer holding `data`, written once. */
export function createUniform(device: GPUDevice, data: ArrayBuffer, label: string): GPUBuffer {
  const buffer = device.createBuffer({
    label,
    size: Math.ceil(data.byteLength / 16) * 16,
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(buffer, 0, data);
  return buffer;
}
