/** Small helpers for labelled storage buffers and the few readbacks a training step allows. */

export const STORAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/** Bytes of a storage buffer holding `bytes`: rounded up to 16 so vec4 views never overrun. */
export function storageSize(bytes: number): number {
  return Math.max(16, Math.ceil(bytes / 16) * 16);
}

/** A storage buffer of `bytes` (storageSize), labelled for GPU debugging. A component's buffers come from its
 * GpuMemory (memory.ts), which frees them when the component is done; this is for short-lived ones. */
export function createStorage(device: GPUDevice, bytes: number, label: string): GPUBuffer {
  return device.createBuffer({ label, size: storageSize(bytes), usage: STORAGE });
}

/** Copies `count` floats starting at float `offset` of `buffer` back to the host (one submit + map). */
export async function readF32(
  device: GPUDevice,
  buffer: GPUBuffer,
  count: number,
  offset = 0,
): Promise<Float32Array> {
  const bytes = count * 4;
  const staging = device.createBuffer({
    size: bytes,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  const encoder = device.createCommandEncoder();
  encoder.copyBufferToBuffer(buffer, offset * 4, staging, 0, bytes);
  device.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  staging.destroy();
  return out;
}

/**
 * Binds buffers to group 0 of `pipeline`: a list binds 0..n-1; a record names the binding numbers (the entry
 * points of one shader use different, sparse bindings). Undefined entries are left out.
 */
export function bindBuffers(
  device: GPUDevice,
  pipeline: GPUComputePipeline,
  buffers: readonly GPUBuffer[] | Record<number, GPUBuffer | undefined>,
  label?: string,
): GPUBindGroup {
  return device.createBindGroup({
    label,
    layout: pipeline.getBindGroupLayout(0),
    entries: Object.entries(buffers)
      .filter((e): e is [string, GPUBuffer] => e[1] !== undefined)
      .map(([binding, buffer]) => ({ binding: Number(binding), resource: { buffer } })),
  });
}
