import { MAX_WORKGROUPS_PER_DIMENSION } from "../gpu/device.ts";
import type { GpuMemory } from "../gpu/memory.ts";
import type { ProgramCache } from "../gpu/programs.ts";
import { kernelChoice, type KernelFamily } from "./kernel_family.ts";
import type { Dispatch, OpContext, TensorView } from "./types.ts";

/** An OpContext whose uniform and scratch buffers are created immediately (at plan time) and kept for reuse.
 * A transient slot keeps the largest buffer asked for so far and hands it to every request that fits, so plans
 * that ask for their largest slot first (e.g. a YOLO stem's im2col) end up with one buffer per slot.
 * `scratchBytes` counts the scratch and transient storage allocated. `kernels` defaults to the device's family
 * (kernelChoice: by adapter, or as KESTREL_KERNELS forces). */
export function createOpContext(
  memory: GpuMemory,
  programs: ProgramCache,
  kernels: KernelFamily = kernelChoice(memory.device).family,
): OpContext & { scratchBytes(): number } {
  const slots = new Map<string, GPUBuffer>();
  let bytes = 0;
  const storage = (size: number, label: string) => {
    bytes += size;
    return memory.storage(size, label);
  };
  return {
    device: memory.device,
    memory,
    programs,
    kernels,
    uniform: (data: ArrayBuffer, label: string) => memory.uniform(data, label),
    scratch: storage,
    transient(slot: string, size: number, label: string): GPUBuffer {
      const held = slots.get(slot);
      if (held && held.size >= size) return held;
      const buffer = storage(size, `${slot} (transient, first for ${label})`);
      slots.set(slot, buffer);
      return buffer;
    },
    scratchBytes: () => bytes,
  };
}

/** Records `dispatches` in order into one compute pass. */
export function recordDispatches(pass: GPUComputePassEncoder, dispatches: Dispatch[]): void {
  for (const d of dispatches) {
    pass.setPipeline(d.pipeline);
    pass.setBindGroup(0, d.bindGroup);
    pass.dispatchWorkgroups(...d.workgroups);
  }
}

/** Encodes `dispatches` into one compute pass and submits it (tests and benchmarks; a step records its own). */
export function submitDispatches(device: GPUDevice, dispatches: Dispatch[]): void {
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  recordDispatches(pass, dispatches);
  pass.end();
  device.queue.submit([encoder.finish()]);
}

/** Elements between consecutive batch items of `v`. */
export function batchStride(v: TensorView): number {
  return v.batchStride ?? v.shape.slice(1).reduce((a, b) => a * b, 1);
}

/** Number of elements `v` describes (batch items times per-item size). */
export function elementCount(v: TensorView): number {
  return v.shape.reduce((a, b) => a * b, 1);
}

/** Throws unless `v` has exactly `shape`, naming the op and tensor role. */
export function expectShape(op: string, role: string, v: TensorView, shape: number[]): void {
  if (v.shape.length !== shape.length || v.shape.some((d, i) => d !== shape[i])) {
    throw new Error(`${op}: ${role} has shape [${v.shape}], expected [${shape}]`);
  }
}

/** Bit of the op kernels' `flags` uniform word: add into the destination instead of overwriting it (a tensor
 * that fans out to several consumers gets its gradient summed). */
const ACCUMULATE_FLAG = 2;

/** The `flags` bit of a kernel that overwrites its destination, or adds into it when `accumulate`. */
export function accumulateFlag(accumulate: boolean | undefined): number {
  return accumulate ? ACCUMULATE_FLAG : 0;
}

/** Workgroup count covering `n` items at `per` items per workgroup. */
export function groups(n: number, per: number): number {
  return Math.max(1, Math.ceil(n / per));
}

/**
 * A 1-D grid over `count` invocations of `perGroup`-invocation workgroups, folded into y where it exceeds the
 * per-dimension limit; kernels index by `y * pitch + x`.
 */
export function grid1d(
  count: number,
  perGroup: number,
): { workgroups: [number, number, number]; pitch: number } {
  const total = groups(count, perGroup);
  const x = Math.min(total, MAX_WORKGROUPS_PER_DIMENSION);
  return { workgroups: [x, Math.ceil(total / x), 1], pitch: x * perGroup };
}
