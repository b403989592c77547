/**
 * YOLOv5's fliplr and flipud augmentations on 8-bit planar RGB and its normalised [cls, cx, cy, w, h] rows.
 * @module
 */
import type { PlanarImage } from "./images.ts";

/** Mirrors the image left-right and its normalised [cls, cx, cy, w, h] rows (x -> 1 − x). */
export function flipLr(img: PlanarImage, labels: Float32Array): void {
  const { width: w, height: h, data } = img;
  for (let row = 0; row < 3 * h; row++) data.subarray(row * w, row * w + w).reverse();
  for (let o = 0; o < labels.length; o += 5) labels[o + 1] = Math.fround(1 - labels[o + 1]);
}

/** Mirrors the image top-bottom and its rows (y -> 1 − y). */
export function flipUd(img: PlanarImage, labels: Float32Array): void {
  const { width: w, height: h, data } = img;
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < h >> 1; y++) {
      const a = (c * h + y) * w, b = (c * h + h - 1 - y) * w;
      const top = data.slice(a, a + w);
      data.copyWithin(a, b, b + w);
      data.set(top, b);
    }
  }
  for (let o = 0; o < labels.length; o += 5) labels[o + 2] = Math.fround(1 - labels[o + 2]);
}
