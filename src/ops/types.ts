import type { GpuMemory } from "../gpu/memory.ts";
import type { ProgramCache } from "../gpu/programs.ts";
import type { KernelFamily } from "./kernel_family.ts";

/** A float32 NCHW tensor living somewhere inside a GPU buffer. */
export interface TensorView {
  buffer: GPUBuffer;
  offset: number /* in f32 elements */;
  shape: number[];
  /** elements between consecutive batch items; defaults to the product of shape[1..]. Lets a conv write straight
   * into a channel slice of a Concat's output, so Concat/Split need no copies. */
  batchStride?: number;
}

/** One pre-bound compute dispatch; flops/bytes/opClass feed the benchmark's per-op-class GFLOP/s. */
export interface Dispatch {
  label: string;
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
  flops?: number;
  bytes?: number;
  opClass?: string;
}

export interface OpContext {
  device: GPUDevice;
  /** the owner of every buffer the plan makes (freed with it) */
  memory: GpuMemory;
  programs: ProgramCache;
  /** which GEMM kernels conv plans (src/ops/kernel_family.ts) */
  kernels: KernelFamily;
  /** a uniform buffer created at plan time (never per step) */
  uniform(data: ArrayBuffer, label: string): GPUBuffer;
  /** scratch storage created at plan time */
  scratch(bytes: number, label: string): GPUBuffer;
  /** plan-time scratch an op uses only within one run of its own dispatches (its forward, or its backward), so
   * nothing in it outlives that run: every request for the same `slot` may get the same buffer, since a pass
   * runs its dispatches in order. */
  transient(slot: string, bytes: number, label: string): GPUBuffer;
}

/** What an op contributes to a training step: forward dispatches, then backward dispatches (in recording order). */
export interface OpPlan {
  forward: Dispatch[];
  backward: Dispatch[];
}
