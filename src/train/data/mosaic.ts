/**
 * YOLOv5's load_mosaic: four images (the index plus three random ones, shuffled) placed around a centre drawn from
 * U(s/2, 3s/2) on a 2s×2s canvas of 114, their labels shifted with them and clipped to [0, 2s], then
 * random_perspective with border −s/2 brings it back to s×s.
 */
import { randomPerspective } from "./augment_geometry.ts";
import type { AugmentHyp } from "./hyp.ts";
import { type PlanarImage, toPixels } from "./images.ts";
import type { Rng } from "./rng.ts";

/** One image as load_image gives it (long side = s) with its normalised [cls, cx, cy, w, h] rows. */
export interface MosaicTile {
  img: PlanarImage;
  labels: Float32Array;
}

/**
 * `pick(i)` loads dataset item i; `index` is the item being built, `n` the dataset size. Returns the s×s image and
 * its pixel rows [cls, x1, y1, x2, y2].
 */
export async function loadMosaic(
  index: number,
  n: number,
  s: number,
  pick: (i: number) => Promise<MosaicTile>,
  hyp: AugmentHyp,
  rng: Rng,
): Promise<{ img: PlanarImage; rows: Float32Array }> {
  const yc = Math.trunc(rng.uniform(s / 2, 2 * s - s / 2));
  const xc = Math.trunc(rng.uniform(s / 2, 2 * s - s / 2));
  const indices = rng.shuffle([index, rng.int(n), rng.int(n), rng.int(n)]);
  const S = 2 * s;
  const canvas = new Uint8Array(3 * S * S).fill(114);
  const rows: number[] = [];
  for (let k = 0; k < 4; k++) {
    const { img, labels } = await pick(indices[k]);
    const { width: w, height: h } = img;
    let a: number[], b: number[];
    if (k === 0) {
      a = [Math.max(xc - w, 0), Math.max(yc - h, 0), xc, yc];
      b = [w - (a[2] - a[0]), h - (a[3] - a[1]), w, h];
    } else if (k === 1) {
      a = [xc, Math.max(yc - h, 0), Math.min(xc + w, S), yc];
      b = [0, h - (a[3] - a[1]), Math.min(w, a[2] - a[0]), h];
    } else if (k === 2) {
      a = [Math.max(xc - w, 0), yc, xc, Math.min(S, yc + h)];
      b = [w - (a[2] - a[0]), 0, w, Math.min(a[3] - a[1], h)];
    } else {
      a = [xc, yc, Math.min(xc + w, S), Math.min(S, yc + h)];
      b = [0, 0, Math.min(w, a[2] - a[0]), Math.min(a[3] - a[1], h)];
    }
    for (let c = 0; c < 3; c++) {
      for (let y = 0; y < a[3] - a[1]; y++) {
        const src = (c * h + b[1] + y) * w + b[0];
        canvas.set(img.data.subarray(src, src + (a[2] - a[0])), (c * S + a[1] + y) * S + a[0]);
      }
    }
    const px = toPixels(labels, w, h, a[0] - b[0], a[1] - b[1]);
    for (let i = 0; i < px.length; i++) rows.push(i % 5 === 0 ? px[i] : Math.min(Math.max(px[i], 0), S));
  }
  return randomPerspective({ width: S, height: S, data: canvas }, Float32Array.from(rows), hyp, rng, -s / 2);
}
