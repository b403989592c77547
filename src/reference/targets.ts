/**
 * YOLOv5 v7.0 `ComputeLoss.build_targets` (docs/training.md §6.3) as plain loops over PyTorch's tensor steps,
 * written from the description apart from src/train/targets.ts so that the reference loss checks that code
 * instead of sharing it. Float values go through Math.fround wherever PyTorch computes a float32 tensor.
 * @module
 */
import type { LossLayer, TargetRows } from "../train/targets.ts";

/** One emitted entry: indices (b, a, gj, gi), tbox (tx, ty, tw, th) in grid units, the anchor, the class. */
export interface TargetEntry {
  b: number;
  a: number;
  gj: number;
  gi: number;
  tbox: [number, number, number, number];
  anchor: [number, number];
  tcls: number;
}

const f32 = Math.fround;
/** The neighbour-cell bias g. */
const G = 0.5;
/** PyTorch's `off` rows (before * g), in slot order: own, j (left), k (up), l (right), m (down). */
const OFF: [number, number][] = [[0, 0], [1, 0], [0, 1], [-1, 0], [0, -1]];

/** Python's float `%` by 1 (the result takes the divisor's sign). */
const pyMod1 = (v: number) => f32(v - Math.floor(v));

/** build_targets per layer: the entries in PyTorch's order (slot-major, then anchor, then target). */
export function referenceBuildTargets(
  targets: TargetRows,
  layers: LossLayer[],
  anchorT: number,
): TargetEntry[][] {
  const nt = targets.length / 6;
  return layers.map(({ nx, ny, anchors }) => {
    // t = targets repeated per anchor (anchor index appended) times gain, then filtered: rows stay anchor-major.
    const t: { b: number; c: number; gx: number; gy: number; gw: number; gh: number; a: number }[] = [];
    for (let a = 0; a < anchors.length; a++) {
      for (let n = 0; n < nt; n++) {
        const [b, c, x, y, w, h] = targets.subarray(6 * n, 6 * n + 6);
        const gw = f32(w * nx), gh = f32(h * ny);
        const r = [f32(gw / f32(anchors[a][0])), f32(gh / f32(anchors[a][1]))];
        if (Math.max(...r.map((v) => Math.max(v, f32(1 / v)))) < anchorT) {
          t.push({ b, c, gx: f32(x * nx), gy: f32(y * ny), gw, gh, a });
        }
      }
    }
    const entries: TargetEntry[] = [];
    for (let slot = 0; slot < OFF.length; slot++) {
      for (const row of t) {
        const gxi = f32(nx - row.gx), gyi = f32(ny - row.gy);
        const j = pyMod1(row.gx) < G && row.gx > 1;
        const k = pyMod1(row.gy) < G && row.gy > 1;
        const l = pyMod1(gxi) < G && gxi > 1;
        const m = pyMod1(gyi) < G && gyi > 1;
        if (![true, j, k, l, m][slot]) continue;
        // gij = (gxy - offsets).long(); the in-place clamp also moves the box target below.
        const gi = Math.min(Math.max(Math.trunc(f32(row.gx - OFF[slot][0] * G)), 0), nx - 1);
        const gj = Math.min(Math.max(Math.trunc(f32(row.gy - OFF[slot][1] * G)), 0), ny - 1);
        entries.push({
          b: Math.trunc(row.b),
          a: row.a,
          gj,
          gi,
          tbox: [f32(row.gx - gi), f32(row.gy - gj), row.gw, row.gh],
          anchor: [f32(anchors[row.a][0]), f32(anchors[row.a][1])],
          tcls: Math.trunc(row.c),
        });
      }
    }
    return entries;
  });
}
