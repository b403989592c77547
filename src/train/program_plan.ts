/**
 * What a training program is made of, decided once per (batch, imgsz): its parameter, gradient and running
 * statistics buffers, where every tensor lives (program_memory.ts), and the dispatches of its forward, loss and
 * backward in the order a step records them. TrainProgram (program.ts) owns a plan and runs it: uploads batches,
 * encodes steps, reads the loss and weights back.
 * @module
 */
import type { ProgramCache } from "../gpu/programs.ts";
import type { OnnxModel } from "../onnx/model.ts";
import type { TrainGraph } from "../onnx/graph.ts";
import { inferShapes } from "../onnx/graph_shapes.ts";
import { planCast } from "../ops/cast.ts";
import type { KernelFamily } from "../ops/kernel_family.ts";
import type { Dispatch, OpContext, TensorView } from "../ops/types.ts";
import { cacheBoundaries, type FrozenCacheOptions, FrozenFeatureCache } from "./frozen_cache.ts";
import { type LossPlan, planLoss } from "./loss.ts";
import { type LossHyp, lossSettings } from "./loss_settings.ts";
import { buildBufferLayout, type FlatLayout, packParams, type ParamLayout } from "./param_layout.ts";
import { accKey, gradientTensors, type Memory, planMemory, readGradientChannels } from "./program_memory.ts";
import { convSiluPairs } from "./program_fusion.ts";
import { planNode } from "./program_ops.ts";

export interface ProgramOptions {
  batch: number;
  /** Square input side in pixels (a multiple of the largest stride). */
  imgsz: number;
  /** train.py --freeze: N (layers 0..N-1) or an explicit list of layers. */
  freeze?: number | number[];
  /** Loss hyperparameters before train.py's scaling (hyp.scratch-low.yaml keys); required when training. */
  hyp?: LossHyp;
  /** Most labels one batch may carry (sizes the target tables). Default 256 per image. */
  maxTargets?: number;
  /** false: forward only (evaluation), no gradients, loss or backward. */
  training?: boolean;
  /** Convs share one im2col scratch and rebuild their columns in backward: less memory, a slower step
   * (planConv's recomputeColumns). Default false. */
  recomputeColumns?: boolean;
  /** Share compiled pipelines with other programs on the same device. */
  programs?: ProgramCache;
  /**
   * Mixed precision (training programs): the convs' GEMMs read f16 operands (an f16 copy of the params made at
   * the start of each forward, f16 im2col columns and dy copies) and accumulate in f32; everything else,
   * master weights included, stays f32 (docs/architecture.md, "Mixed precision").
   */
  amp?: boolean;
  /** Vec4s per invocation of streaming kernels (src/gpu/runs.ts streamChunk); default 256 (lavapipe's). */
  chunk?: number;
  /** The conv GEMM kernels to plan; default the device's (src/ops/kernel_family.ts: by adapter, or as
   * KESTREL_KERNELS forces). */
  kernels?: KernelFamily;
}

const DEFAULT_TARGETS_PER_IMAGE = 256;

/** What a program that trains another program's weights (TrainProgram.createSharing) takes from it. */
export interface SharedWeights {
  params: GPUBuffer;
  grads?: GPUBuffer;
  buffers?: GPUBuffer;
  /** The loss scale a GradScaler writes (LossPlan.scale). */
  lossScale?: GPUBuffer;
  /** The feature cache whose storage a cached-mode program restores from. */
  cache?: FrozenFeatureCache;
}

export interface ProgramPlan {
  /** Flat parameters (layout.size floats); shared with the main program where there is one. */
  params: GPUBuffer;
  /** Flat weight gradients, same layout; absent when not training. */
  grads?: GPUBuffer;
  /** BatchNorm running means and variances (bufferLayout); absent when the model has no BatchNormalization. */
  buffers?: GPUBuffer;
  bufferLayout: FlatLayout;
  /** The image batch (batch, 3, imgsz, imgsz). */
  input: TensorView;
  /** Raw head conv outputs (batch, na*no, ny, nx), P3 first. */
  heads: TensorView[];
  /** Forward of every node, in graph order. */
  forward: Dispatch[];
  /** The part of `forward` that computes no gradient-carrying tensor (a frozen prefix). */
  prefix: Dispatch[];
  /** The forward a step runs: all of it, or in cached mode the nodes after the frozen prefix. */
  stepForward: Dispatch[];
  loss?: LossPlan;
  lossDispatches: Dispatch[];
  /** In recording order (reverse graph order). */
  backward: Dispatch[];
  /** The readback buffer of the 4 loss items; absent when not training. */
  staging?: GPUBuffer;
  /** Gradient buffers zeroed at the start of every step (program_memory.ts clearEachStep). */
  clears: GPUBuffer[];
  /** Sets how many images of the batch are real: BatchNorm statistics must cover only those. */
  setCounts: ((count: number) => void)[];
  /** Bytes of values and gradients (program_memory.ts). */
  memoryBytes: number;
  /** Bytes of op scratch: per-op buffers plus the transient slots shared by all ops (OpContext.transient). */
  scratchBytes: number;
  /** The frozen-feature cache of cached mode. */
  cache?: FrozenFeatureCache;
}

/**
 * Allocates (in ctx.memory) and plans every buffer and dispatch of a program over `graph`; with `cache` the
 * step's forward starts after the frozen prefix, whose outputs the feature cache restores.
 */
export function planProgram(
  device: GPUDevice,
  ctx: OpContext & { scratchBytes(): number },
  model: OnnxModel,
  graph: TrainGraph,
  layout: ParamLayout,
  options: ProgramOptions,
  cache?: FrozenCacheOptions,
  shared?: SharedWeights,
): ProgramPlan {
  const { batch, imgsz } = options;
  const training = options.training ?? true;
  const maxStride = Math.max(...graph.yolo.strides);
  if (imgsz % maxStride !== 0) {
    throw new Error(`TrainProgram: imgsz ${imgsz} is not a multiple of ${maxStride}`);
  }
  const shapes = inferShapes(model, graph, batch, imgsz, imgsz);
  const memory = ctx.memory;
  const trainable = new Set(layout.entries.filter((e) => !e.frozen).map((e) => e.name));
  // The loss always writes the head gradients, even when everything below is frozen.
  const needsGrad = training
    ? new Set([...gradientTensors(graph, trainable), ...graph.heads])
    : new Set<string>();
  const inTail = (i: number) => needsGrad.has(graph.nodes[i].y);
  if (cache && !training) {
    throw new Error("TrainProgram: the frozen-feature cache is for training programs");
  }
  // Checked against the budget before anything is allocated.
  const boundaries = cache && cacheBoundaries(device, graph, shapes, inTail, cache);
  const bufferLayout = buildBufferLayout(model, graph);
  let params: GPUBuffer;
  let buffers: GPUBuffer | undefined;
  if (shared) {
    params = shared.params;
    buffers = shared.buffers;
  } else {
    params = memory.storage(layout.size * 4, "params");
    device.queue.writeBuffer(params, 0, packParams(model, layout));
    if (bufferLayout.size > 0) {
      buffers = memory.storage(bufferLayout.size * 4, "buffers");
      device.queue.writeBuffer(buffers, 0, packParams(model, bufferLayout));
    }
  }
  const order = graph.nodes.map((_, i) => i).reverse().filter(inTail);
  const place: Memory = planMemory(memory, graph, shapes, needsGrad, order, graph.heads);
  const input = place.values.get(graph.input)!;
  const heads = graph.heads.map((h) => place.values.get(h)!);
  let grads: GPUBuffer | undefined;
  let loss: LossPlan | undefined;
  let staging: GPUBuffer | undefined;
  if (training) {
    grads = shared?.grads ?? memory.storage(layout.size * 4, "grads");
    const hyp = options.hyp;
    if (!hyp) throw new Error("TrainProgram: training needs options.hyp (the loss hyperparameters)");
    const settings = lossSettings(hyp, graph.heads.length, graph.yolo.nc, imgsz);
    const lossHeads = graph.yolo.layers.map((l, i) => ({
      logits: heads[i],
      grad: place.grads.get(graph.heads[i])!,
      layer: {
        ny: heads[i].shape[2],
        nx: heads[i].shape[3],
        anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
      },
    }));
    loss = planLoss(
      ctx,
      lossHeads,
      settings,
      batch,
      options.maxTargets ?? DEFAULT_TARGETS_PER_IMAGE * batch,
      shared?.lossScale,
    );
    staging = memory.readback(16, "loss items staging");
  }
  const forward: Dispatch[] = [];
  const prefix: Dispatch[] = [];
  const stepForward: Dispatch[] = [];
  const setCounts: ((count: number) => void)[] = [];
  const backwardOf: Dispatch[][] = [];
  // amp: the f16 weights the convs read, refreshed first in every forward (the optimizer moved the f32 ones).
  const half = training && options.amp
    ? planCast(ctx, params, layout.size, "f16", "params (f16 copy)", options.chunk ?? 256)
    : undefined;
  if (half) {
    forward.push(half.dispatch);
    prefix.push(half.dispatch);
    stepForward.push(half.dispatch);
  }
  const readChannels = readGradientChannels(graph, shapes, needsGrad);
  const fused = convSiluPairs(graph, place, needsGrad, trainable);
  const fusedSilus = new Set(fused.values());
  graph.nodes.forEach((n, i) => {
    // A SiLU fused into its conv is planned with the conv.
    if (fusedSilus.has(i)) {
      backwardOf[i] = [];
      return;
    }
    const silu = fused.get(i);
    const plan = planNode(ctx, n, {
      value: (t) => place.values.get(t)!,
      grad: (t) => place.grads.get(t),
      readChannels: (t) => readChannels.get(t),
      accumulate: (t) => place.accumulate.get(accKey(i, t)) ?? false,
      param: (name) => flatView(layout, params, name),
      halfParam: half && ((name) => flatView(layout, half.buffer, name)),
      buffer: (name) => flatView(bufferLayout, buffers!, name),
      training,
      recomputeColumns: options.recomputeColumns ?? false,
      copied: (t) => place.copies.has(t),
      siluAfter: silu === undefined ? undefined : graph.nodes[silu].y,
      paramGrad: (name) => (grads && trainable.has(name) ? flatView(layout, grads, name) : undefined),
    });
    forward.push(...plan.forward);
    if (!inTail(i)) prefix.push(...plan.forward);
    if (!boundaries || inTail(i)) stepForward.push(...plan.forward);
    backwardOf[i] = plan.backward;
    if (plan.setCount) setCounts.push(plan.setCount);
  });
  const value = (t: string) => place.values.get(t)!;
  return {
    params,
    grads,
    buffers,
    bufferLayout,
    input,
    heads,
    forward,
    prefix,
    stepForward,
    loss,
    lossDispatches: loss ? [...loss.dispatches] : [],
    backward: order.flatMap((i) => backwardOf[i]),
    staging,
    clears: place.clearEachStep,
    setCounts,
    memoryBytes: place.bytes,
    scratchBytes: ctx.scratchBytes(),
    cache: boundaries
      ? new FrozenFeatureCache(memory, boundaries, value, cache!.samples, shared?.cache)
      : undefined,
  };
}

/** The view of one named entry of a flat buffer (params, grads or running statistics). */
function flatView(layout: FlatLayout, buffer: GPUBuffer, name: string): TensorView {
  const e = layout.byName.get(name);
  if (!e) throw new Error(`TrainProgram: '${name}' is not in the flat layout`);
  return { buffer, offset: e.offset, shape: e.shape };
}
