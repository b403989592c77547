/**
 * YOLOv5's ComputeLoss on the GPU (wgsl/loss/yolo_loss.wgsl): planned once per (batch, head shapes), fed the
 * host-built target tables per batch with queue.writeBuffer into buffers sized at plan time, and recorded into
 * the step's compute pass between forward and backward. Writes dLoss/dlogits into the head gradient views and
 * [lbox, lobj, lcls, loss] into `items`, the step's only readback.
 * @module
 */
import { bindBuffers } from "../gpu/buffers.ts";
import { u32Fields, uniformLayout } from "../gpu/uniform.ts";
import { batchStride, groups } from "../ops/context.ts";
import type { Dispatch, OpContext, TensorView } from "../ops/types.ts";
import type { LossSettings } from "./loss_settings.ts";
import { buildTargets, TARGET_COLUMNS } from "./targets.ts";
import type { LayerTargets, LossLayer, TargetRows } from "./targets.ts";

const FILE = "loss/yolo_loss.wgsl";
const WG = 64;
const ENTRY_WORDS = 16;
/** The per-layer and the totals uniforms of wgsl/loss/yolo_loss.wgsl. */
const LAYER_PARAMS = uniformLayout(FILE, "Layer", [
  ...u32Fields(
    [
      ...["head_off", "head_bstride", "grad_off", "grad_bstride", "bs", "na", "no", "nc"],
      ...["ny", "nx", "entry_base", "partial_base", "obj_groups", "layer", "nl", "_p1"],
    ] as const,
  ),
  ...(["box_gain", "obj_gain", "cls_gain", "balance", "cls_pw", "obj_pw", "gamma", "smoothing"] as const).map(
    (f) => [f, "f32"] as const,
  ),
]);
const TOTALS_PARAMS = uniformLayout(FILE, "Totals", [
  ...u32Fields(["nl", "_p0", "_p1", "_p2"]),
  ...(["box_gain", "obj_gain", "cls_gain", "_p3"] as const).map((f) => [f, "f32"] as const),
]);
/** A label can claim its own cell plus both x and both y neighbours (integer gx/gy): 5 slots per anchor. */
const MAX_SLOTS = 5;

/** One detection layer: the head conv's output (bs, na*no, ny, nx), where its gradient goes, grid and anchors. */
export interface LossHead {
  logits: TensorView;
  grad: TensorView;
  layer: LossLayer;
}

export interface LossItems {
  box: number;
  obj: number;
  cls: number;
  /** (box + obj + cls) * bs: the value backpropagated. */
  loss: number;
}

export interface LossPlan {
  dispatches: Dispatch[];
  /** 4 floats: lbox, lobj, lcls, loss. */
  items: GPUBuffer;
  /**
   * Builds this batch's targets (rows [b, cls, x, y, w, h]) and queues their upload before the next submit.
   * `images` (default: the planned bs) is how many leading batch items are real; the rest are padding that get
   * no loss and no gradient, so a short last batch trains like PyTorch's smaller batch (fused models: no BN).
   */
  setTargets(targets: TargetRows, images?: number): LayerTargets[];
  maxTargets: number;
  /**
   * [S, f32(1/S)]: the gradient written into the heads is that of loss*S (GradScaler.scale(loss); the items stay
   * unscaled). Holds [1, 1] until a GradScaler (optim/stepper.ts) writes it.
   */
  scale: GPUBuffer;
}

/** Where each layer's target entries and objectness partial sums sit in the loss buffers all layers share. */
interface LossLayout {
  nl: number;
  /** target entries each layer may hold, and the index of its first */
  capacity: number[];
  entryBase: number[];
  totalEntries: number;
  /** objectness cells per layer, the workgroups covering them, and where its partial sums start */
  cells: number[];
  objGroups: number[];
  partialBase: number[];
}

function lossLayout(heads: LossHead[], bs: number, maxTargets: number): LossLayout {
  const capacity = heads.map((h) => maxTargets * h.layer.anchors.length * MAX_SLOTS);
  const cells = heads.map((h) => bs * h.layer.anchors.length * h.layer.ny * h.layer.nx);
  const objGroups = cells.map((c) => groups(c, WG));
  return {
    nl: heads.length,
    capacity,
    entryBase: capacity.map((_, i) => capacity.slice(0, i).reduce((a, b) => a + b, 0)),
    totalEntries: capacity.reduce((a, b) => a + b, 0),
    cells,
    objGroups,
    partialBase: objGroups.map((_, i) => objGroups.slice(0, i).reduce((a, g) => a + g + 3, 0)),
  };
}

interface LossBuffers {
  entries: GPUBuffer;
  scratch: GPUBuffer;
  partials: GPUBuffer;
  items: GPUBuffer;
  /** per-layer entry counts (rewritten per batch), then the fixed per-layer sizes and balances, then bs */
  counts: GPUBuffer;
  scale: GPUBuffer;
}

function lossBuffers(
  ctx: OpContext,
  settings: LossSettings,
  bs: number,
  l: LossLayout,
  scale?: GPUBuffer,
): LossBuffers {
  const { nl, objGroups, partialBase } = l;
  const buffers = {
    entries: ctx.memory.storage(l.totalEntries * ENTRY_WORDS * 4, "loss entries"),
    scratch: ctx.memory.storage(l.totalEntries * 5 * 4, "loss entry scratch"),
    partials: ctx.memory.storage((partialBase[nl - 1] + objGroups[nl - 1] + 3) * 4, "loss partials"),
    items: ctx.memory.storage(16, "loss items"),
    scale: scale ?? ctx.memory.upload(new Float32Array([1, 1]), "loss scale"),
  };
  const counts = new Uint32Array(nl * 6 + 1);
  for (let i = 0; i < nl; i++) {
    counts.set([partialBase[i], objGroups[i], l.cells[i] / bs, settings.nc], nl + 4 * i);
    counts[5 * nl + i] = new Uint32Array(new Float32Array([settings.balance[i]]).buffer)[0];
  }
  counts[6 * nl] = bs;
  const countsBuffer = ctx.memory.storage(counts.byteLength, "loss counts");
  ctx.device.queue.writeBuffer(countsBuffer, 0, counts);
  return { ...buffers, counts: countsBuffer };
}

/** Per layer: objectness over every cell, then the target entries; then one dispatch sums up the items. */
function lossDispatches(
  ctx: OpContext,
  heads: LossHead[],
  settings: LossSettings,
  bs: number,
  l: LossLayout,
  b: LossBuffers,
): Dispatch[] {
  const { device, programs } = ctx;
  const no = settings.nc + 5;
  const objPipe = programs.get(FILE, "obj_all", { WG });
  const entryPipe = programs.get(FILE, "entries_main", { WG });
  const dispatches: Dispatch[] = [];
  heads.forEach((h, i) => {
    const na = h.layer.anchors.length;
    if (h.logits.shape[1] !== na * no) {
      throw new Error(`planLoss: head ${i} has ${h.logits.shape[1]} channels, expected na*no = ${na * no}`);
    }
    const layer = LAYER_PARAMS.pack({
      head_off: h.logits.offset,
      head_bstride: batchStride(h.logits),
      grad_off: h.grad.offset,
      grad_bstride: batchStride(h.grad),
      bs,
      na,
      no,
      nc: settings.nc,
      ny: h.layer.ny,
      nx: h.layer.nx,
      entry_base: l.entryBase[i],
      partial_base: l.partialBase[i],
      obj_groups: l.objGroups[i],
      layer: i,
      nl: l.nl,
      box_gain: settings.box,
      obj_gain: settings.obj,
      cls_gain: settings.cls,
      balance: settings.balance[i],
      cls_pw: settings.clsPw,
      obj_pw: settings.objPw,
      gamma: settings.flGamma,
      smoothing: settings.labelSmoothing,
    });
    const uniform = ctx.uniform(layer, `loss layer ${i}`);
    const common = { 0: h.logits.buffer, 1: h.grad.buffer, 5: uniform, 11: b.scale };
    dispatches.push({
      label: `loss obj ${i}`,
      pipeline: objPipe,
      bindGroup: bindBuffers(device, objPipe, { ...common, 3: b.counts, 4: b.partials }, `loss obj ${i}`),
      workgroups: [l.objGroups[i], 1, 1],
      opClass: "loss",
    });
    dispatches.push({
      label: `loss entries ${i}`,
      pipeline: entryPipe,
      bindGroup: bindBuffers(
        device,
        entryPipe,
        { ...common, 2: b.entries, 3: b.counts, 4: b.partials, 6: b.scratch },
        `loss entries ${i}`,
      ),
      workgroups: [1, 1, 1],
      opClass: "loss",
    });
  });
  const finPipe = programs.get(FILE, "finish", {});
  const totals = TOTALS_PARAMS.pack({
    nl: l.nl,
    box_gain: settings.box,
    obj_gain: settings.obj,
    cls_gain: settings.cls,
  });
  dispatches.push({
    label: "loss finish",
    pipeline: finPipe,
    bindGroup: bindBuffers(
      device,
      finPipe,
      { 7: b.partials, 8: b.counts, 9: b.items, 10: ctx.uniform(totals, "loss totals") },
      "loss finish",
    ),
    workgroups: [1, 1, 1],
    opClass: "loss",
  });
  return dispatches;
}

/** LossPlan.setTargets: builds a batch's target tables on the host and queues their upload. */
function targetUploader(
  device: GPUDevice,
  heads: LossHead[],
  settings: LossSettings,
  bs: number,
  l: LossLayout,
  b: LossBuffers,
): LossPlan["setTargets"] {
  const { nl, capacity, entryBase } = l;
  const packed = new Uint32Array(l.totalEntries * ENTRY_WORDS);
  const packedF = new Float32Array(packed.buffer);
  return (targets: TargetRows, images = bs): LayerTargets[] => {
    if (!Number.isInteger(images) || images < 1 || images > bs) {
      throw new Error(`loss: batch of ${images} images, planned for 1..${bs}`);
    }
    for (let r = 0; r < targets.length; r += TARGET_COLUMNS) {
      if (!(targets[r] >= 0 && targets[r] < images)) {
        throw new Error(
          `loss: target row ${r / TARGET_COLUMNS} is for image ${targets[r]}, batch has ${images}`,
        );
      }
    }
    const tables = buildTargets(targets, heads.map((h) => h.layer), settings.anchorT);
    const n = new Uint32Array(nl);
    tables.forEach((t, i) => {
      if (t.n > capacity[i]) {
        throw new Error(
          `loss: layer ${i} has ${t.n} target entries, planned for ${capacity[i]} (maxTargets)`,
        );
      }
      n[i] = t.n;
      for (let k = 0; k < t.n; k++) {
        const o = (entryBase[i] + k) * ENTRY_WORDS;
        packed.set([t.b[k], t.a[k], t.gj[k], t.gi[k], t.tcls[k], t.objWinner[k]], o);
        packedF.set(t.tbox.subarray(4 * k, 4 * k + 4), o + 8);
        packedF.set(t.anchor.subarray(2 * k, 2 * k + 2), o + 12);
      }
      const used = packed.subarray(entryBase[i] * ENTRY_WORDS, (entryBase[i] + t.n) * ENTRY_WORDS);
      device.queue.writeBuffer(b.entries, entryBase[i] * ENTRY_WORDS * 4, used);
    });
    device.queue.writeBuffer(b.counts, 0, n);
    device.queue.writeBuffer(b.counts, 6 * nl * 4, new Uint32Array([images]));
    return tables;
  };
}

export function planLoss(
  ctx: OpContext,
  heads: LossHead[],
  settings: LossSettings,
  bs: number,
  maxTargets: number,
  /** another loss's `scale` to read (a program that trains the same weights at another batch size) */
  scale?: GPUBuffer,
): LossPlan {
  const layout = lossLayout(heads, bs, maxTargets);
  const buffers = lossBuffers(ctx, settings, bs, layout, scale);
  return {
    dispatches: lossDispatches(ctx, heads, settings, bs, layout, buffers),
    items: buffers.items,
    maxTargets,
    scale: buffers.scale,
    setTargets: targetUploader(ctx.device, heads, settings, bs, layout, buffers),
  };
}
