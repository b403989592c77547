/**
 * YOLOv5's mixup: two mosaics blended with r ~ Beta(32, 32) (truncated to uint8 as astype does), labels of both
 * kept. Beta comes from two Gamma draws (Marsaglia-Tsang) on the seeded Rng.
 */
import type { PlanarImage } from "./images.ts";
import type { Rng } from "./rng.ts";

type Mosaic = { img: PlanarImage; rows: Float32Array };

export function mixup(a: Mosaic, b: Mosaic, rng: Rng): Mosaic {
  const x = gamma(32, rng), y = gamma(32, rng);
  const r = x / (x + y);
  const data = new Uint8Array(a.img.data.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.trunc(a.img.data[i] * r + b.img.data[i] * (1 - r));
  const rows = new Float32Array(a.rows.length + b.rows.length);
  rows.set(a.rows);
  rows.set(b.rows, a.rows.length);
  return { img: { ...a.img, data }, rows };
}

/** Gamma(shape >= 1, 1) by Marsaglia and Tsang's method, normals by Box-Muller. */
function gamma(shape: number, rng: Rng): number {
  const d = shape - 1 / 3, c = 1 / Math.sqrt(9 * d);
  for (;;) {
    const z = Math.sqrt(-2 * Math.log(1 - rng.random())) * Math.cos(2 * Math.PI * rng.random());
    const v = (1 + c * z) ** 3;
    if (v > 0 && Math.log(1 - rng.random()) < 0.5 * z * z + d - d * v + d * Math.log(v)) return d * v;
  }
}
