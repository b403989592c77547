/**
 * YOLOv5 v7.0 `ComputeLoss.build_targets`, host side: which (image, anchor, cell) entries each label trains, in
 * PyTorch's emission order. It depends only on the labels, the anchors and the grid sizes, never on predictions,
 * so it runs on the CPU per batch and its small tables are uploaded. Arithmetic follows PyTorch's float32 tensors
 * (Math.fround after every op), Python's `%` and `.long()` truncation, and the in-place clamp that also moves the
 * box target (docs/training.md §6.3).
 * @module
 */

/** One detection layer as the loss sees it: grid size and anchors in grid units (pixel anchors / stride). */
export interface LossLayer {
  nx: number;
  ny: number;
  anchors: [number, number][];
}

/** Entries of one layer; entry k is `b[k], a[k], gj[k], gi[k]`, `tbox[4k..4k+3]`, `anchor[2k..2k+1]`, `tcls[k]`. */
export interface LayerTargets {
  n: number;
  b: Int32Array;
  a: Int32Array;
  gj: Int32Array;
  gi: Int32Array;
  /** (tx, ty, tw, th) in grid units, cell-relative centre. */
  tbox: Float32Array;
  anchor: Float32Array;
  tcls: Int32Array;
  /** 1 where this entry is the last one written to its (b, a, gj, gi) objectness cell (index_put: last wins). */
  objWinner: Uint8Array;
}

/** Label rows as the collate function makes them: [image index in batch, class, cx, cy, w, h] normalised. */
export type TargetRows = Float32Array;

export const TARGET_COLUMNS = 6;

const f32 = Math.fround;
/** Slot offsets (ox, oy) times g = 0.5, in PyTorch's `off` order: own, left, up, right, down. */
const OFFSETS: [number, number][] = [[0, 0], [0.5, 0], [0, 0.5], [-0.5, 0], [0, -0.5]];

/** Python float `%` with a positive divisor of 1: result has the divisor's sign. */
function mod1(v: number): number {
  return f32(v - Math.floor(v));
}

/** build_targets for every layer; `anchorT` is hyp.anchor_t (4.0 by default). */
export function buildTargets(targets: TargetRows, layers: LossLayer[], anchorT: number): LayerTargets[] {
  if (targets.length % TARGET_COLUMNS !== 0) {
    throw new Error(`buildTargets: targets length ${targets.length} is not a multiple of ${TARGET_COLUMNS}`);
  }
  return layers.map((layer) => buildLayer(targets, layer, anchorT));
}

function buildLayer(targets: TargetRows, layer: LossLayer, anchorT: number): LayerTargets {
  const nt = targets.length / TARGET_COLUMNS;
  const { nx, ny, anchors } = layer;
  // Kept (anchor, target) pairs in anchor-major order, with their grid-scaled box.
  const kept: { a: number; row: number; gx: number; gy: number; gw: number; gh: number }[] = [];
  for (let a = 0; a < anchors.length; a++) {
    const [aw, ah] = [f32(anchors[a][0]), f32(anchors[a][1])];
    for (let row = 0; row < nt; row++) {
      const o = row * TARGET_COLUMNS;
      const gx = f32(targets[o + 2] * nx), gy = f32(targets[o + 3] * ny);
      const gw = f32(targets[o + 4] * nx), gh = f32(targets[o + 5] * ny);
      const rw = f32(gw / aw), rh = f32(gh / ah);
      const worst = Math.max(rw, f32(1 / rw), rh, f32(1 / rh));
      if (worst < anchorT) kept.push({ a, row, gx, gy, gw, gh });
    }
  }
  const rows: { a: number; row: number; gi: number; gj: number; tbox: number[] }[] = [];
  for (let slot = 0; slot < OFFSETS.length; slot++) {
    const [ox, oy] = OFFSETS[slot];
    for (const k of kept) {
      if (!slotFires(slot, k.gx, k.gy, nx, ny)) continue;
      const gi = Math.min(Math.max(Math.trunc(f32(k.gx - ox)), 0), nx - 1);
      const gj = Math.min(Math.max(Math.trunc(f32(k.gy - oy)), 0), ny - 1);
      rows.push({ a: k.a, row: k.row, gi, gj, tbox: [f32(k.gx - gi), f32(k.gy - gj), k.gw, k.gh] });
    }
  }
  const n = rows.length;
  const out: LayerTargets = {
    n,
    b: new Int32Array(n),
    a: new Int32Array(n),
    gj: new Int32Array(n),
    gi: new Int32Array(n),
    tbox: new Float32Array(n * 4),
    anchor: new Float32Array(n * 2),
    tcls: new Int32Array(n),
    objWinner: new Uint8Array(n),
  };
  const lastWriter = new Map<number, number>();
  rows.forEach((r, k) => {
    const o = r.row * TARGET_COLUMNS;
    out.b[k] = targets[o];
    out.a[k] = r.a;
    out.gj[k] = r.gj;
    out.gi[k] = r.gi;
    out.tbox.set(r.tbox, k * 4);
    out.anchor[k * 2] = anchors[r.a][0];
    out.anchor[k * 2 + 1] = anchors[r.a][1];
    out.tcls[k] = targets[o + 1];
    lastWriter.set(((out.b[k] * anchors.length + r.a) * ny + r.gj) * nx + r.gi, k);
  });
  for (const k of lastWriter.values()) out.objWinner[k] = 1;
  return out;
}

function slotFires(slot: number, gx: number, gy: number, nx: number, ny: number): boolean {
  switch (slot) {
    case 0:
      return true;
    case 1:
      return mod1(gx) < 0.5 && gx > 1;
    case 2:
      return mod1(gy) < 0.5 && gy > 1;
    case 3: {
      const gxi = f32(nx - gx);
      return mod1(gxi) < 0.5 && gxi > 1;
    }
    default: {
      const gyi = f32(ny - gy);
      return mod1(gyi) < 0.5 && gyi > 1;
    }
  }
}
