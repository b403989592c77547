/** Seeded random loss cases: small grids, a few labels, heads in (bs, na, ny, nx, no) layout. */
import { lossSettings } from "../../src/train/loss_settings.ts";
import type { LossSettings } from "../../src/train/loss_settings.ts";
import type { LossLayer } from "../../src/train/targets.ts";
import { mulberry32 } from "../_helpers/random.ts";

/**
 * A seeded batch for a program test: `count` images of uniform noise (count*3*imgsz*imgsz, RGB 0..1) and 3
 * labels per image [b, cls, x, y, w, h] (classes cycling through nc, boxes well inside the image).
 */
export function randomBatch(count: number, seed: number, imgsz: number, nc: number) {
  const rnd = mulberry32(seed);
  const images = Float32Array.from({ length: count * 3 * imgsz * imgsz }, () => rnd());
  const rows: number[] = [];
  for (let b = 0; b < count; b++) {
    for (let k = 0; k < 3; k++) {
      rows.push(b, k % nc, 0.2 + rnd() * 0.6, 0.2 + rnd() * 0.6, 0.1 + rnd() * 0.4, 0.1 + rnd() * 0.4);
    }
  }
  return { images, targets: new Float32Array(rows) };
}

export interface LossCase {
  bs: number;
  layers: LossLayer[];
  heads: Float32Array[];
  targets: Float32Array;
  settings: LossSettings;
}

export function randomCase(
  seed: number,
  o: { nc: number; bs: number; grids: number[]; nt: number },
): LossCase {
  const rnd = mulberry32(seed);
  const na = 3, no = o.nc + 5;
  const layers = o.grids.map((g, i) => ({
    nx: g,
    ny: g,
    anchors: Array.from({ length: na }, () => [0.3 + rnd() * 1.5 * (i + 1), 0.3 + rnd() * 1.5 * (i + 1)]) as [
      number,
      number,
    ][],
  }));
  const heads = layers.map((l) =>
    Float32Array.from({ length: o.bs * na * l.ny * l.nx * no }, () => (rnd() - 0.5) * 4)
  );
  const rows: number[] = [];
  for (let t = 0; t < o.nt; t++) {
    const w = 0.05 + rnd() * 0.5, h = 0.05 + rnd() * 0.5;
    rows.push(Math.floor(rnd() * o.bs), Math.floor(rnd() * o.nc), rnd(), rnd(), w, h);
  }
  const hyp = { box: 0.05, obj: 1, cls: 0.5, cls_pw: 1.3, obj_pw: 0.8, anchor_t: 4, fl_gamma: 0 };
  return {
    bs: o.bs,
    layers,
    heads,
    targets: new Float32Array(rows),
    settings: lossSettings(hyp, layers.length, o.nc, 320),
  };
}

/** (bs, na, ny, nx, no) -> the head conv's NCHW layout (bs, na*no, ny, nx). */
export function toConvLayout(
  h: ArrayLike<number>,
  bs: number,
  na: number,
  ny: number,
  nx: number,
): Float32Array<ArrayBuffer> {
  const no = h.length / (bs * na * ny * nx);
  const out = new Float32Array(h.length);
  for (let b = 0; b < bs; b++) {
    for (let a = 0; a < na; a++) {
      for (let s = 0; s < ny * nx; s++) {
        for (let f = 0; f < no; f++) {
          out[((b * na + a) * no + f) * ny * nx + s] = h[((b * na + a) * ny * nx + s) * no + f];
        }
      }
    }
  }
  return out;
}
