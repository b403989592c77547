import { bindBuffers } from "./buffers.ts";
import type { GpuMemory } from "./memory.ts";
import { u32Fields, uniformLayout } from "./uniform.ts";
import type { ProgramCache } from "./programs.ts";
import { streamPlan } from "./runs.ts";

const SUM_SQUARES_PARAMS = uniformLayout(
  "util/sum_squares.wgsl",
  "Params",
  u32Fields(["n4", "partials", "out_index", "_pad"]),
);
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
      SUM_SQUARES_PARAMS.pack({ n4, partials: this.#workgroups, out_index: outIndex }),
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
