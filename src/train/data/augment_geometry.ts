/**
 * YOLOv5's random_perspective: M = T·S·R·P·C (centre, perspective, rotation+scale, shear, translation), the image
 * warped by M onto a (size + 2·border) canvas filled with 114, boxes mapped through their 4 corners, clipped, and
 * filtered by box_candidates. Random draws are taken in YOLOv5's order. The warp is a float bilinear inverse map;
 * OpenCV's warpAffine quantises the source position to 1/32 px first, so pixel values can differ by a level.
 */
import type { AugmentHyp } from "./hyp.ts";
import type { PlanarImage } from "./images.ts";
import type { Rng } from "./rng.ts";

type Mat3 = [number, number, number, number, number, number, number, number, number];
const PAD = 114;

const mul = (a: Mat3, b: Mat3): Mat3 =>
  [0, 1, 2].flatMap((r) =>
    [0, 1, 2].map((c) => a[3 * r] * b[c] + a[3 * r + 1] * b[3 + c] + a[3 * r + 2] * b[6 + c])
  ) as Mat3;

/**
 * Returns the warped image (height/width = input + 2·border) and the surviving pixel rows [cls, x1, y1, x2, y2].
 * `border` is −imgsz/2 for a mosaic (2s canvas -> s output), 0 otherwise.
 */
export function randomPerspective(
  img: PlanarImage,
  rows: Float32Array,
  hyp: AugmentHyp,
  rng: Rng,
  border = 0,
): { img: PlanarImage; rows: Float32Array } {
  const height = img.height + 2 * border, width = img.width + 2 * border;
  const C: Mat3 = [1, 0, -img.width / 2, 0, 1, -img.height / 2, 0, 0, 1];
  const P: Mat3 = [1, 0, 0, 0, 1, 0, rng.uniform(-hyp.perspective, hyp.perspective), 0, 1];
  P[7] = rng.uniform(-hyp.perspective, hyp.perspective);
  const a = (rng.uniform(-hyp.degrees, hyp.degrees) * Math.PI) / 180;
  const s = rng.uniform(1 - hyp.scale, 1 + hyp.scale);
  const [alpha, beta] = [s * Math.cos(a), s * Math.sin(a)];
  const R: Mat3 = [alpha, beta, 0, -beta, alpha, 0, 0, 0, 1];
  const S: Mat3 = [1, 0, 0, 0, 1, 0, 0, 0, 1];
  S[1] = Math.tan((rng.uniform(-hyp.shear, hyp.shear) * Math.PI) / 180);
  S[3] = Math.tan((rng.uniform(-hyp.shear, hyp.shear) * Math.PI) / 180);
  const tx = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate) * width;
  const ty = rng.uniform(0.5 - hyp.translate, 0.5 + hyp.translate) * height;
  const T: Mat3 = [1, 0, tx, 0, 1, ty, 0, 0, 1];
  const M = mul(T, mul(S, mul(R, mul(P, C))));
  const identity = M.every((v, i) => v === (i % 4 === 0 ? 1 : 0));
  const out = border !== 0 || !identity ? warp(img, M, width, height) : img;
  return { img: out, rows: transformBoxes(rows, M, s, width, height, hyp.perspective !== 0) };
}

function warp(img: PlanarImage, M: Mat3, width: number, height: number): PlanarImage {
  const inv = invert(M);
  const affine = inv[6] === 0 && inv[7] === 0;
  const { width: sw, height: sh, data: src } = img;
  const splane = sw * sh, dplane = width * height;
  const data = new Uint8Array(3 * dplane).fill(PAD);
  const at = (
    i: number,
    x: number,
    y: number,
  ) => (x < 0 || y < 0 || x >= sw || y >= sh ? PAD : src[i + y * sw + x]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      let u = inv[0] * x + inv[1] * y + inv[2], v = inv[3] * x + inv[4] * y + inv[5];
      if (!affine) {
        const w = inv[6] * x + inv[7] * y + inv[8];
        u /= w, v /= w;
      }
      if (u <= -1 || v <= -1 || u >= sw || v >= sh) continue;
      const x0 = Math.floor(u), y0 = Math.floor(v), fx = u - x0, fy = v - y0;
      const w00 = (1 - fx) * (1 - fy), w01 = fx * (1 - fy), w10 = (1 - fx) * fy, w11 = fx * fy;
      const o = y * width + x;
      if (x0 >= 0 && y0 >= 0 && x0 + 1 < sw && y0 + 1 < sh) {
        for (let c = 0, q = y0 * sw + x0; c < 3; c++, q += splane) {
          const value = src[q] * w00 + src[q + 1] * w01 + src[q + sw] * w10 + src[q + sw + 1] * w11;
          data[o + c * dplane] = value + 0.5;
        }
      } else {
        for (let c = 0, i = 0; c < 3; c++, i += splane) {
          const value = at(i, x0, y0) * w00 + at(i, x0 + 1, y0) * w01 + at(i, x0, y0 + 1) * w10 +
            at(i, x0 + 1, y0 + 1) * w11;
          data[o + c * dplane] = value + 0.5;
        }
      }
    }
  }
  return { width, height, data };
}

function invert(m: Mat3): Mat3 {
  const [a, b, c, d, e, f, g, h, i] = m;
  const A = e * i - f * h, B = -(d * i - f * g), Cc = d * h - e * g;
  const det = a * A + b * B + c * Cc;
  return [
    A,
    -(b * i - c * h),
    b * f - c * e,
    B,
    a * i - c * g,
    -(a * f - c * d),
    Cc,
    -(a * h - b * g),
    a * e - b * d,
  ]
    .map((v) => v / det) as Mat3;
}

function transformBoxes(
  rows: Float32Array,
  M: Mat3,
  s: number,
  width: number,
  height: number,
  persp: boolean,
) {
  const kept: number[] = [];
  for (let o = 0; o < rows.length; o += 5) {
    const [x1, y1, x2, y2] = [rows[o + 1], rows[o + 2], rows[o + 3], rows[o + 4]];
    const xs: number[] = [], ys: number[] = [];
    for (const [x, y] of [[x1, y1], [x2, y2], [x1, y2], [x2, y1]]) {
      const w = persp ? M[6] * x + M[7] * y + M[8] : 1;
      xs.push((M[0] * x + M[1] * y + M[2]) / w);
      ys.push((M[3] * x + M[4] * y + M[5]) / w);
    }
    const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), hi);
    const box = [clip(Math.min(...xs), width), clip(Math.min(...ys), height), clip(Math.max(...xs), width)];
    box.push(clip(Math.max(...ys), height));
    if (boxCandidate([x1 * s, y1 * s, x2 * s, y2 * s], box)) kept.push(rows[o], ...box);
  }
  return Float32Array.from(kept);
}

/** box_candidates: wider and taller than 2 px, > 10% of the scaled original area, aspect ratio < 100. */
export function boxCandidate(before: number[], after: number[]): boolean {
  const EPS = 1e-16;
  const [w1, h1] = [before[2] - before[0], before[3] - before[1]];
  const [w2, h2] = [after[2] - after[0], after[3] - after[1]];
  const ar = Math.max(w2 / (h2 + EPS), h2 / (w2 + EPS));
  return w2 > 2 && h2 > 2 && (w2 * h2) / (w1 * h1 + EPS) > 0.1 && ar < 100;
}
