/**
 * Plain TypeScript YOLOv5 v7.0 ComputeLoss (docs/training.md §6) with its analytic gradient wrt the raw head
 * logits, in float64 over float32 inputs. Tests only: the reference the GPU loss and the golden run are
 * compared with. Heads are in PyTorch's training layout (bs, na, ny, nx, no).
 * @module
 */
import type { LossLayer, TargetRows } from "../train/targets.ts";
import type { LossSettings } from "../train/loss_settings.ts";
import { referenceBuildTargets, type TargetEntry } from "./targets.ts";

export interface ReferenceLoss {
  /** (lbox + lobj + lcls) * bs: what is backpropagated. */
  loss: number;
  /** [lbox, lobj, lcls] after gains, before * bs. */
  items: [number, number, number];
  /** dLoss/dlogits per layer, same layout as the heads. */
  grads: Float64Array[];
  /** The detached quantities (CIoU's alpha per entry, objectness targets per cell), per layer: finite
   * differences must hold them fixed, as autograd does. */
  detached: Detached;
}

export interface Detached {
  alphas: number[][];
  tobj: Float64Array[];
}

const EPS = 1e-7;
const FOCAL_ALPHA = 0.25;

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));

/** torch BCEWithLogits (with pos_weight), optionally wrapped in YOLOv5's FocalLoss: [loss, dloss/dx]. */
export function bceWithLogits(x: number, y: number, pw: number, gamma: number): [number, number] {
  const m = Math.max(-x, 0);
  const lw = 1 + (pw - 1) * y;
  const l = (1 - y) * x + lw * (Math.log(Math.exp(-m) + Math.exp(-x - m)) + m);
  const s = sigmoid(x);
  const dl = (1 - y) - lw * (1 - s);
  if (gamma <= 0) return [l, dl];
  const pt = y * s + (1 - y) * (1 - s);
  const af = y * FOCAL_ALPHA + (1 - y) * (1 - FOCAL_ALPHA);
  const mod = (1 - pt) ** gamma;
  const dpt = (2 * y - 1) * s * (1 - s);
  const dmod = pt === 1 ? 0 : -gamma * (1 - pt) ** (gamma - 1) * dpt;
  return [l * af * mod, af * (dl * mod + l * dmod)];
}

/** d max(a, b)/da with PyTorch's tie split. */
const dMaxA = (a: number, b: number) => (a > b ? 1 : a === b ? 0.5 : 0);

/** CIoU of pred (x1,y1,w1,h1) vs target, and dCIoU/d(pred) with alpha detached (docs/training.md §6.5). */
export function ciou(
  p: number[],
  t: number[],
  fixedAlpha?: number,
): { ciou: number; grad: number[]; alpha: number } {
  const [x1, y1, w1, h1] = p, [x2, y2, w2, h2] = t;
  const b1x1 = x1 - w1 / 2, b1x2 = x1 + w1 / 2, b1y1 = y1 - h1 / 2, b1y2 = y1 + h1 / 2;
  const b2x1 = x2 - w2 / 2, b2x2 = x2 + w2 / 2, b2y1 = y2 - h2 / 2, b2y2 = y2 + h2 / 2;
  const iwRaw = Math.min(b1x2, b2x2) - Math.max(b1x1, b2x1);
  const ihRaw = Math.min(b1y2, b2y2) - Math.max(b1y1, b2y1);
  const iw = Math.max(iwRaw, 0), ih = Math.max(ihRaw, 0);
  const inter = iw * ih;
  const union = w1 * h1 + w2 * h2 - inter + EPS;
  const iou = inter / union;
  const cw = Math.max(b1x2, b2x2) - Math.min(b1x1, b2x1);
  const ch = Math.max(b1y2, b2y2) - Math.min(b1y1, b2y1);
  const c2 = cw * cw + ch * ch + EPS;
  const sx = b2x1 + b2x2 - b1x1 - b1x2, sy = b2y1 + b2y2 - b1y1 - b1y2;
  const rho2 = (sx * sx + sy * sy) / 4;
  const d = Math.atan(w2 / h2) - Math.atan(w1 / h1);
  const k = 4 / (Math.PI * Math.PI);
  const v = k * d * d;
  const alpha = fixedAlpha ?? v / (v - iou + (1 + EPS));
  const value = iou - (rho2 / c2 + v * alpha);

  const gIou = 1, gRho2 = -1 / c2, gC2 = rho2 / (c2 * c2), gV = -alpha;
  const gUnion = -gIou * inter / (union * union);
  const gInter = gIou / union - gUnion;
  let gw1 = gUnion * h1, gh1 = gUnion * w1;
  const gD = gV * 2 * k * d;
  const r2 = w1 * w1 + h1 * h1;
  gw1 += -gD * h1 / r2;
  gh1 += gD * w1 / r2;
  // Corner gradients of box 1: [x1, x2, y1, y2].
  const gIw = iwRaw >= 0 ? gInter * ih : 0, gIh = ihRaw >= 0 ? gInter * iw : 0;
  const gCw = gC2 * 2 * cw, gCh = gC2 * 2 * ch;
  const gSx = gRho2 * sx / 2, gSy = gRho2 * sy / 2;
  const gbx2 = gIw * dMaxA(b2x2, b1x2) + gCw * dMaxA(b1x2, b2x2) - gSx;
  const gbx1 = -gIw * dMaxA(b1x1, b2x1) - gCw * dMaxA(b2x1, b1x1) - gSx;
  const gby2 = gIh * dMaxA(b2y2, b1y2) + gCh * dMaxA(b1y2, b2y2) - gSy;
  const gby1 = -gIh * dMaxA(b1y1, b2y1) - gCh * dMaxA(b2y1, b1y1) - gSy;
  return {
    ciou: value,
    alpha,
    grad: [gbx1 + gbx2, gby1 + gby2, gw1 + (gbx2 - gbx1) / 2, gh1 + (gby2 - gby1) / 2],
  };
}

/** ComputeLoss(p, targets) and its gradient; `layers` carries grid sizes and anchors in grid units. */
export function referenceLoss(
  heads: ArrayLike<number>[],
  bs: number,
  layers: LossLayer[],
  targets: TargetRows,
  s: LossSettings,
  fixed?: Detached,
): ReferenceLoss {
  const tables = referenceBuildTargets(targets, layers, s.anchorT);
  const no = s.nc + 5;
  const cp = 1 - 0.5 * s.labelSmoothing, cn = 0.5 * s.labelSmoothing;
  let lbox = 0, lobj = 0, lcls = 0;
  const grads = heads.map((h) => new Float64Array(h.length));
  const alphas: number[][] = layers.map(() => []);
  const tobjs: Float64Array[] = [];
  layers.forEach((layer, i) => {
    const p = heads[i], g = grads[i], t: TargetEntry[] = tables[i], nt = t.length;
    const na = layer.anchors.length;
    const cells = bs * na * layer.ny * layer.nx;
    if (p.length !== cells * no) {
      throw new Error(`referenceLoss: head ${i} has ${p.length} values, want ${cells * no}`);
    }
    const cellOf = (e: TargetEntry) => ((e.b * na + e.a) * layer.ny + e.gj) * layer.nx + e.gi;
    const tobj = new Float64Array(cells);
    tobjs.push(tobj);
    const boxScale = s.box * bs / nt, clsScale = s.cls * bs / (nt * s.nc);
    for (const [k, e] of t.entries()) {
      const o = cellOf(e) * no;
      const sg = [0, 1, 2, 3].map((f) => sigmoid(p[o + f]));
      const pbox = [
        sg[0] * 2 - 0.5,
        sg[1] * 2 - 0.5,
        (sg[2] * 2) ** 2 * e.anchor[0],
        (sg[3] * 2) ** 2 * e.anchor[1],
      ];
      const { ciou: c, grad, alpha } = ciou(
        pbox,
        e.tbox,
        fixed?.alphas[i][k],
      );
      alphas[i].push(alpha);
      lbox += (1 - c) / nt;
      for (let f = 0; f < 4; f++) {
        const dsig = sg[f] * (1 - sg[f]);
        const dp = f < 2 ? 2 * dsig : 8 * sg[f] * dsig * e.anchor[f - 2];
        g[o + f] += -boxScale * grad[f] * dp;
      }
      // index_put: of entries sharing a cell, the last one written wins.
      tobj[cellOf(e)] = Math.max(Math.fround(c), 0);
      if (s.nc > 1) {
        for (let c2 = 0; c2 < s.nc; c2++) {
          const [l, dl] = bceWithLogits(p[o + 5 + c2], c2 === e.tcls ? cp : cn, s.clsPw, s.flGamma);
          lcls += l / (nt * s.nc);
          g[o + 5 + c2] += clsScale * dl;
        }
      }
    }
    const objScale = s.obj * bs * s.balance[i] / cells;
    let obj = 0;
    for (let c = 0; c < cells; c++) {
      const [l, dl] = bceWithLogits(p[c * no + 4], fixed ? fixed.tobj[i][c] : tobj[c], s.objPw, s.flGamma);
      obj += l;
      g[c * no + 4] += objScale * dl;
    }
    lobj += s.balance[i] * obj / cells;
  });
  const items: [number, number, number] = [lbox * s.box, lobj * s.obj, lcls * s.cls];
  return { loss: (items[0] + items[1] + items[2]) * bs, items, grads, detached: { alphas, tobj: tobjs } };
}
