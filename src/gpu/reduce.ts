import { bindBuffers } from "./buffers.ts";
import type { GpuMemory } from "./memory.ts";
import type { ProgramCache } from "./programs.ts";
import { streamPlan } from "./runs.ts";

/** Invocations per workgroup of wgsl/util/sum_squares.wgsl (a const there: it sizes workgroup memory). */
const REDUCE_WG = 64;

/**
 * Sum of squares of the first `n4` vec4s of `src`, written to f32 `outIndex` of `out` by two dispatches recorded
 * into the caller's pass (no readback). Bind groups and scratch are made once, here. `chunk`: see runs.ts.
 */
export class SumOfSquares {
  readonly #partial: GPUComputePipeline;
  readonly #finish: GPUComputePipeline;
  readonly #partialGroup: GPUBindGroup;
  readonly #finishGroup: GPUBindGroup;
  readonly #workgroups: number;

  constructor(
    memory: GpuMemory,
    programs: ProgramCache,
    src: GPUBuffer,
    n4: number,
    out: GPUBuffer,
    outIndex: number,
    chunk = 256,
  ) {
    const plan = streamPlan(n4, REDUCE_WG, chunk);
    this.#workgroups = plan.workgroups;
    const device = memory.device;
    const partials = memory.storage(this.#workgroups * 4, "sum_squares.partials");
    const uniform = memory.uniform(
      new Uint32Array([n4, this.#workgroups, outIndex, 0]).buffer,
      "sum_squares.params",
    );
    this.#partial = programs.get("util/sum_squares.wgsl", "partial", { CHUNK: plan.chunk });
    this.#finish = programs.get("util/sum_squares.wgsl", "finish");
    this.#partialGroup = bindBuffers(device, this.#partial, [src, partials, uniform]);
    this.#finishGroup = bindBuffers(device, this.#finish, { 1: partials, 2: uniform, 3: out });
  }

  encode(pass: GPUComputePassEncoder): void {
    pass.setPipeline(this.#partial);
    pass.setBindGroup(0, this.#partialGroup);
    pass.dispatchWorkgroups(this.#workgroups);
    pass.setPipeline(this.#finish);
    pass.setBindGroup(0, this.#finishGroup);
    pass.dispatchWorkgroups(1);
  }
}
