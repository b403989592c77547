/**
 * YOLOv5's optimizer step on the GPU over the flat parameter layout: with a loss scale, GradScaler's unscale
 * and inf/NaN check (wgsl/optim/unscale.wgsl); global gradient L2 norm (two-pass reduction), clip coefficient
 * (computed on the GPU), then one SGD-nesterov / Adam / AdamW dispatch over every group that also zeroes the
 * consumed gradients and leaves everything else untouched when the check found an inf/NaN. Pipelines, state
 * buffers, uniforms and bind groups are made once; a step only writes its uniforms and records four (five with
 * a loss scale) dispatches into the caller's encoder.
 */
import { bindBuffers } from "../gpu/buffers.ts";
import { GpuMemory } from "../gpu/memory.ts";
import { uniformLayout } from "../gpu/uniform.ts";
import type { ProgramCache } from "../gpu/programs.ts";
import { SumOfSquares } from "../gpu/reduce.ts";
import { streamPlan } from "../gpu/runs.ts";
import { groupTags, type LayoutEntry, layoutLength, type OptimizerName, validateLayout } from "./groups.ts";

export interface OptimizerOptions {
  kind: OptimizerName;
  /** Group 1's weight decay, already scaled by batch_size * accumulate / nbs (Schedule.weightDecay). */
  weightDecay: number;
  /** Adam/AdamW beta2 (beta1 is the per-step momentum). */
  beta2?: number;
  eps?: number;
  /** clip_grad_norm_ max_norm. */
  maxGradNorm?: number;
  workgroupSize?: number;
  /** Vec4s each invocation walks (src/gpu/runs.ts streamChunk: 256 on lavapipe, 1 on GPUs). */
  chunk?: number;
  /** [S, f32(1/S)] of a GradScaler (amp): the gradients hold loss*S's and are unscaled before clipping. */
  lossScale?: GPUBuffer;
}

/** What a step leaves for the host, read after its submit. */
export interface StepReadback {
  /** gradient L2 norm before clipping (after unscaling) */
  gradNorm: number;
  /** some gradient was inf or NaN: the step was skipped (amp only; always false without a loss scale) */
  foundInf: boolean;
}

/** Per-iteration values from the host schedule (IterationPlan fits). */
export interface StepHyper {
  lr: readonly number[];
  /** SGD momentum, or Adam/AdamW beta1, per group. */
  momentum: readonly number[];
}

export interface FlatBuffers {
  params: GPUBuffer;
  /** Summed gradients; the step zeroes them. Frozen tensors' gradients must stay zero (they enter the norm). */
  grads: GPUBuffer;
}

/** The `Params` uniform of wgsl/optim/sgd.wgsl and adam.wgsl: per optimizer group, then the shared fields. */
const GROUP_FIELDS = ["lr", "momentum", "wd", "step_size", "decay", "_p0", "_p1", "_p2"] as const;
const OPTIM_PARAMS = uniformLayout(["optim/sgd.wgsl", "optim/adam.wgsl"], "Params", [
  ...[0, 1, 2].flatMap((j) => GROUP_FIELDS.map((f) => [`groups[${j}].${f}`, "f32"] as const)),
  ["n4", "u32"],
  ["first_step", "u32"],
  ...(["beta2", "one_minus_beta1", "one_minus_beta2", "bc2_sqrt", "eps", "_pad"] as const).map(
    (f) => [f, "f32"] as const,
  ),
]);
/** wgsl/optim/unscale.wgsl's `Params`. */
const UNSCALE_PARAMS = uniformLayout("optim/unscale.wgsl", "Params", [
  ["n4", "u32"],
  ["_p0", "u32"],
  ["_p1", "u32"],
  ["_p2", "u32"],
]);
/** The clip state: [grad L2 norm, clip coefficient, overflow flag (u32), -]; the host reads its first three. */
const CLIP_STATE_BYTES = 16;
const READBACK_BYTES = 12;
/** Byte offset of the overflow flag unscale.wgsl raises (its FOUND index, in words). */
const FOUND_OFFSET = 8;

/** wgsl/optim/clip.wgsl's `Params`. */
const CLIP_PARAMS = uniformLayout("optim/clip.wgsl", "Params", [
  ["max_norm", "f32"],
  ["_p0", "f32"],
  ["_p1", "f32"],
  ["_p2", "f32"],
]);

export class Optimizer {
  readonly n4: number;
  /** SGD's momentum buffer, or Adam's m and v, in the parameters' layout. */
  readonly state: GPUBuffer[];
  /** [grad L2 norm, clip coefficient, overflow flag] of the last step. */
  readonly clipState: GPUBuffer;
  readonly #device: GPUDevice;
  readonly #grads: GPUBuffer;
  readonly #norm: SumOfSquares;
  readonly #clip: GPUComputePipeline;
  readonly #clipGroup: GPUBindGroup;
  readonly #update: GPUComputePipeline;
  readonly #updateGroup: GPUBindGroup;
  readonly #uniform: GPUBuffer;
  readonly #workgroups: number;
  /** GradScaler's unscale + check, with a loss scale. */
  readonly #unscale?: { pipeline: GPUComputePipeline; group: GPUBindGroup };
  readonly #staging: GPUBuffer;
  /** Owns the optimizer's own buffers (not params or grads). */
  readonly #memory: GpuMemory;
  #steps = 0;

  constructor(
    device: GPUDevice,
    programs: ProgramCache,
    layout: readonly LayoutEntry[],
    buffers: FlatBuffers,
    readonly options: OptimizerOptions,
  ) {
    validateLayout(layout);
    this.#device = device;
    this.#grads = buffers.grads;
    this.n4 = layoutLength(layout) / 4;
    const bytes = this.n4 * 16;
    for (const [name, b] of [["params", buffers.params], ["grads", buffers.grads]] as const) {
      if (b.size < bytes) {
        throw new Error(`Optimizer: ${name} buffer has ${b.size} bytes, layout needs ${bytes}`);
      }
    }
    const wg = options.workgroupSize ?? 64;
    const plan = streamPlan(this.n4, wg, options.chunk ?? 256);
    this.#workgroups = plan.workgroups;
    const adam = options.kind !== "SGD";
    const memory = this.#memory = new GpuMemory(device);
    this.state = (adam ? ["m", "v"] : ["momentum_buffer"]).map((s) => memory.storage(bytes, `optim.${s}`));
    const tagBuffer = memory.upload(groupTags(layout), "optim.tags");
    this.clipState = memory.storage(CLIP_STATE_BYTES, "optim.clip");
    this.#staging = memory.readback(CLIP_STATE_BYTES, "optim.step.staging");
    this.#uniform = memory.uniformBuffer(OPTIM_PARAMS.byteLength, "optim.params");

    this.#norm = new SumOfSquares(memory, programs, buffers.grads, this.n4, this.clipState, 0, options.chunk);
    const clipUniform = memory.uniform(
      CLIP_PARAMS.pack({ max_norm: options.maxGradNorm ?? 10 }),
      "optim.clip.params",
    );
    this.#clip = programs.get("optim/clip.wgsl", "main");
    this.#clipGroup = bindBuffers(device, this.#clip, [this.clipState, clipUniform]);

    if (options.lossScale) {
      const pipeline = programs.get("optim/unscale.wgsl", "main", {
        WG: wg,
        CHUNK: plan.chunk,
        FOUND: FOUND_OFFSET / 4,
      });
      const params = memory.uniform(UNSCALE_PARAMS.pack({ n4: this.n4 }), "optim.unscale.params");
      this.#unscale = {
        pipeline,
        group: bindBuffers(device, pipeline, [buffers.grads, options.lossScale, this.clipState, params]),
      };
    }

    const file = adam ? "optim/adam.wgsl" : "optim/sgd.wgsl";
    const constants: Record<string, number> = { WG: wg, CHUNK: plan.chunk };
    if (adam) constants.DECOUPLED = options.kind === "AdamW" ? 1 : 0;
    this.#update = programs.get(file, "main", constants);
    this.#updateGroup = bindBuffers(device, this.#update, [
      buffers.params,
      buffers.grads,
      ...this.state,
      tagBuffer,
      this.clipState,
      this.#uniform,
    ]);
  }

  /** Optimizer steps taken so far (Adam's t; SGD's first step initialises its momentum buffer). */
  get steps(): number {
    return this.#steps;
  }

  /** Sets the step count of a resumed run (its state buffers are restored by the caller). */
  restoreSteps(steps: number): void {
    this.#steps = steps;
  }

  /** optimizer.zero_grad(): train.py's discard of partial accumulation at each epoch start. */
  zeroGrad(encoder: GPUCommandEncoder): void {
    encoder.clearBuffer(this.#grads, 0, this.n4 * 16);
  }

  /**
   * Records (unscale +) clip + step + zero_grad in its own compute pass. With readBack the pre-clip norm and the
   * overflow flag are copied to a staging buffer; after submitting, `await readStep()` returns them.
   */
  step(encoder: GPUCommandEncoder, hyper: StepHyper, opts: { readBack?: boolean } = {}): void {
    this.#steps++;
    this.#writeUniforms(hyper);
    const unscale = this.#unscale;
    // unscale.wgsl only ever raises the flag.
    if (unscale) encoder.clearBuffer(this.clipState, FOUND_OFFSET, 4);
    const pass = encoder.beginComputePass({ label: "optimizer.step" });
    if (unscale) {
      pass.setPipeline(unscale.pipeline);
      pass.setBindGroup(0, unscale.group);
      pass.dispatchWorkgroups(this.#workgroups);
    }
    this.#norm.encode(pass);
    pass.setPipeline(this.#clip);
    pass.setBindGroup(0, this.#clipGroup);
    pass.dispatchWorkgroups(1);
    pass.setPipeline(this.#update);
    pass.setBindGroup(0, this.#updateGroup);
    pass.dispatchWorkgroups(this.#workgroups);
    pass.end();
    if (opts.readBack) encoder.copyBufferToBuffer(this.clipState, 0, this.#staging, 0, READBACK_BYTES);
  }

  /** Frees the optimizer's own buffers (not params or grads). */
  destroy(): void {
    this.#memory.destroy();
  }

  /** The pre-clip gradient norm and overflow flag of the last step recorded with readBack, once it has run. */
  async readStep(): Promise<StepReadback> {
    await this.#staging.mapAsync(GPUMapMode.READ, 0, READBACK_BYTES);
    const range = this.#staging.getMappedRange(0, READBACK_BYTES);
    const gradNorm = new Float32Array(range, 0, 1)[0];
    const foundInf = new Uint32Array(range, FOUND_OFFSET, 1)[0] !== 0;
    this.#staging.unmap();
    return { gradNorm, foundInf };
  }

  #writeUniforms(hyper: StepHyper): void {
    const { weightDecay } = this.options;
    const beta2 = this.options.beta2 ?? 0.999;
    const t = this.#steps;
    const values: Record<string, number> = {
      n4: this.n4,
      first_step: t === 1 ? 1 : 0,
      beta2,
      // Adam's beta1 is hyp.momentum in every group (warmup never touches it).
      one_minus_beta1: 1 - hyper.momentum[0],
      one_minus_beta2: 1 - beta2,
      bc2_sqrt: Math.sqrt(1 - beta2 ** t),
      eps: this.options.eps ?? 1e-8,
    };
    for (let j = 0; j < 3; j++) {
      const lr = hyper.lr[j];
      const beta1 = hyper.momentum[j];
      const wd = j === 1 ? weightDecay : 0;
      values[`groups[${j}].lr`] = lr;
      values[`groups[${j}].momentum`] = beta1;
      values[`groups[${j}].wd`] = wd;
      values[`groups[${j}].step_size`] = lr / (1 - beta1 ** t);
      values[`groups[${j}].decay`] = 1 - lr * wd;
    }
    this.#device.queue.writeBuffer(this.#uniform, 0, OPTIM_PARAMS.pack(values, "optim.params"));
  }
}
