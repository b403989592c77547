/**
 * ModelEMA (docs/training.md §5) over flat GPU buffers: the parameters and, where the model has them,
 * normalisation running stats. d_k = decay * (1 - exp(-k / tau)) with k incremented before use; ema = d*ema +
 * (1-d)*model.
 */
import { bindBuffers } from "../gpu/buffers.ts";
import { GpuMemory } from "../gpu/memory.ts";
import { uniformLayout } from "../gpu/uniform.ts";
import type { ProgramCache } from "../gpu/programs.ts";
import { streamPlan } from "../gpu/runs.ts";

/** wgsl/optim/ema.wgsl's `Params`. */
const EMA_PARAMS = uniformLayout("optim/ema.wgsl", "Params", [
  ["d", "f32"],
  ["one_minus_d", "f32"],
  ["n4", "u32"],
  ["_pad", "u32"],
]);

export interface EmaSource {
  buffer: GPUBuffer;
  /** Floats to average. */
  size: number;
  label: string;
}

export interface EmaOptions {
  decay?: number;
  tau?: number;
  /** Updates already made (a resumed run). */
  updates?: number;
  workgroupSize?: number;
  /** Vec4s each invocation walks (src/gpu/runs.ts streamChunk). */
  chunk?: number;
}

interface Target {
  pipeline: GPUComputePipeline;
  uniform: GPUBuffer;
  group: GPUBindGroup;
  n4: number;
  workgroups: number;
}

export class Ema {
  /** The EMA copies, one per source, in the sources' layouts. */
  readonly buffers: GPUBuffer[];
  readonly decay: number;
  readonly tau: number;
  readonly #device: GPUDevice;
  readonly #targets: Target[];
  /** Owns the EMA copies and uniforms. */
  readonly #memory: GpuMemory;
  #updates: number;

  /** Copies the sources (deepcopy(model)) with one submit; later updates only record. */
  constructor(device: GPUDevice, programs: ProgramCache, sources: EmaSource[], options: EmaOptions = {}) {
    this.#device = device;
    this.#memory = new GpuMemory(device);
    this.decay = options.decay ?? 0.9999;
    this.tau = options.tau ?? 2000;
    this.#updates = options.updates ?? 0;
    const wg = options.workgroupSize ?? 64;
    const encoder = device.createCommandEncoder();
    this.buffers = [];
    this.#targets = sources.map((s) => {
      const n4 = Math.ceil(s.size / 4);
      if (s.buffer.size < n4 * 16) {
        throw new Error(`Ema: ${s.label} has ${s.buffer.size} bytes, needs ${n4 * 16}`);
      }
      const ema = this.#memory.storage(n4 * 16, `ema.${s.label}`);
      encoder.copyBufferToBuffer(s.buffer, 0, ema, 0, n4 * 16);
      this.buffers.push(ema);
      const uniform = this.#memory.uniformBuffer(EMA_PARAMS.byteLength, `ema.${s.label}.params`);
      const plan = streamPlan(n4, wg, options.chunk ?? 256);
      const pipeline = programs.get("optim/ema.wgsl", "main", { WG: wg, CHUNK: plan.chunk });
      const group = bindBuffers(device, pipeline, [ema, s.buffer, uniform]);
      return { pipeline, uniform, group, n4, workgroups: plan.workgroups };
    });
    device.queue.submit([encoder.finish()]);
  }

  /** Frees the EMA copies and uniforms (not the sources). */
  destroy(): void {
    this.#memory.destroy();
  }

  get updates(): number {
    return this.#updates;
  }

  /** Sets the update count of a resumed run (its EMA buffers are restored by the caller). */
  restoreUpdates(updates: number): void {
    this.#updates = updates;
  }

  /** d for update number k (1-based). */
  decayAt(k: number): number {
    return this.decay * (1 - Math.exp(-k / this.tau));
  }

  /** Records one EMA update in its own compute pass (after the optimizer step, also for scaler-skipped steps). */
  update(encoder: GPUCommandEncoder): void {
    const pass = encoder.beginComputePass({ label: "ema.update" });
    this.encodeUpdate(pass);
    pass.end();
  }

  encodeUpdate(pass: GPUComputePassEncoder): void {
    const d = this.decayAt(++this.#updates);
    for (const t of this.#targets) {
      pass.setPipeline(t.pipeline);
      this.#device.queue.writeBuffer(t.uniform, 0, EMA_PARAMS.pack({ d, one_minus_d: 1 - d, n4: t.n4 }));
      pass.setBindGroup(0, t.group);
      pass.dispatchWorkgroups(t.workgroups);
    }
  }
}
