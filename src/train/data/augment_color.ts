/**
 * YOLOv5's augment_hsv on 8-bit planar RGB. HSV follows OpenCV's 8-bit conversions (H in 0..179 via the
 * fixed-point division tables of cv::RGB2HSV_b, back through the float HSV2RGB): gains r = U(−1, 1)·[h, s, v] + 1
 * build the three LUTs hue (x·r mod 180), saturation and value (x·r clipped to 255), truncated to uint8 as
 * NumPy's astype does.
 */
import type { PlanarImage } from "./images.ts";
import type { Rng } from "./rng.ts";

const HSV_SHIFT = 12;
const SDIV = Int32Array.from({ length: 256 }, (_, i) => (i ? Math.round((255 << HSV_SHIFT) / i) : 0));
const HDIV = Int32Array.from({ length: 256 }, (_, i) => (i ? Math.round((180 << HSV_SHIFT) / (6 * i)) : 0));

export function augmentHsv(img: PlanarImage, hgain: number, sgain: number, vgain: number, rng: Rng): void {
  if (!hgain && !sgain && !vgain) return;
  const r = [hgain, sgain, vgain].map((g) => rng.uniform(-1, 1) * g + 1);
  const lutH = new Uint8Array(256), lutS = new Uint8Array(256), lutV = new Uint8Array(256);
  for (let x = 0; x < 256; x++) {
    lutH[x] = Math.trunc((x * r[0]) % 180);
    lutS[x] = Math.trunc(Math.min(Math.max(x * r[1], 0), 255));
    lutV[x] = Math.trunc(Math.min(Math.max(x * r[2], 0), 255));
  }
  const plane = img.width * img.height;
  const d = img.data;
  const hsv: Triple = [0, 0, 0], rgb: Triple = [0, 0, 0];
  for (let p = 0; p < plane; p++) {
    rgbToHsv(d[p], d[plane + p], d[2 * plane + p], hsv);
    hsvToRgb(lutH[hsv[0]], lutS[hsv[1]], lutV[hsv[2]], rgb);
    d[p] = rgb[0];
    d[plane + p] = rgb[1];
    d[2 * plane + p] = rgb[2];
  }
}

type Triple = [number, number, number];

/** cv::RGB2HSV_b (hrange 180), written into `out` (these run per pixel, so nothing is allocated). */
export function rgbToHsv(r: number, g: number, b: number, out: Triple = [0, 0, 0]): Triple {
  const v = Math.max(r, g, b);
  const diff = v - Math.min(r, g, b);
  let h = v === r ? g - b : v === g ? b - r + 2 * diff : r - g + 4 * diff;
  h = (h * HDIV[diff] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
  out[0] = h < 0 ? h + 180 : h;
  out[1] = (diff * SDIV[v] + (1 << (HSV_SHIFT - 1))) >> HSV_SHIFT;
  out[2] = v;
  return out;
}

/**
 * cv::HSV2RGB_b: to [0, 1], sector formula, back ×255 rounded, written into `out`. In float64 where OpenCV uses
 * float32, which can only move a result lying within float32 rounding of a .5 boundary by one level.
 */
export function hsvToRgb(h8: number, s8: number, v8: number, out: Triple = [0, 0, 0]): Triple {
  const s = s8 / 255, v = v8 / 255;
  let r = v, g = v, b = v;
  if (s !== 0) {
    let h = h8 / 30;
    const sector = Math.floor(h);
    h -= sector;
    const t1 = v * (1 - s), t2 = v * (1 - s * h), t3 = v * (1 - s * (1 - h));
    // cv::HSV2RGB's sector table {1,3,0}, {1,0,2}, {3,0,1}, {0,2,1}, {0,1,3}, {2,1,0} as (b, g, r) picks
    if (sector === 0) b = t1, g = t3, r = v;
    else if (sector === 1) b = t1, g = v, r = t2;
    else if (sector === 2) b = t3, g = v, r = t1;
    else if (sector === 3) b = v, g = t2, r = t1;
    else if (sector === 4) b = v, g = t1, r = t3;
    else b = t2, g = t1, r = v;
  }
  out[0] = (r * 255 + 0.5) | 0, out[1] = (g * 255 + 0.5) | 0, out[2] = (b * 255 + 0.5) | 0;
  return out;
}
