/**
 * OpenCV's cv2.resize(..., INTER_AREA) on 8-bit images when shrinking, which YOLOv5's load_image uses for
 * validation and un-augmented training. Integer factors average whole blocks (2×2 as (sum + 2) >> 2, others as
 * sum·(1/area) rounded half to even); other factors weight each source pixel by its overlap with the destination
 * cell (computeResizeAreaTab, float32 accumulation as cv::ResizeArea_Invoker does). Enlarging is INTER_LINEAR
 * territory and is left to src/image.
 */
import type { RgbImage } from "../../image/decode.ts";

const f = Math.fround;

/** cvRound on a non-negative float, saturated to uint8. */
function saturate(v: number): number {
  const r = Math.round(v);
  const even = Math.abs(v % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
  return Math.min(255, Math.max(0, even));
}

/** Resizes interleaved RGB `img` down to width × height (both no larger than the source). */
export function resizeArea(img: RgbImage, width: number, height: number): RgbImage {
  if (width > img.width || height > img.height) {
    throw new RangeError(`resizeArea shrinks only: ${img.width}x${img.height} -> ${width}x${height}`);
  }
  const scaleX = 1 / (width / img.width), scaleY = 1 / (height / img.height);
  const ix = Math.round(scaleX), iy = Math.round(scaleY);
  const fast = Math.abs(scaleX - ix) < Number.EPSILON && Math.abs(scaleY - iy) < Number.EPSILON;
  return fast ? blockAverage(img, width, height, ix, iy) : areaWeighted(img, width, height, scaleX, scaleY);
}

function blockAverage(img: RgbImage, width: number, height: number, sx: number, sy: number): RgbImage {
  const data = new Uint8Array(width * height * 3);
  const scale = f(1 / (sx * sy));
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      for (let c = 0; c < 3; c++) {
        let sum = 0;
        for (let j = 0; j < sy; j++) {
          for (let i = 0; i < sx; i++) sum += img.data[((y * sy + j) * img.width + x * sx + i) * 3 + c];
        }
        data[(y * width + x) * 3 + c] = sx === 2 && sy === 2 ? (sum + 2) >> 2 : saturate(f(sum * scale));
      }
    }
  }
  return { width, height, data };
}

interface Tap {
  dst: number;
  src: number;
  alpha: number;
}

/** computeResizeAreaTab: each destination cell's source pixels and their float32 weights. */
function areaTaps(ssize: number, dsize: number, scale: number): Tap[] {
  const taps: Tap[] = [];
  for (let dx = 0; dx < dsize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale;
    const cell = Math.min(scale, ssize - fsx1);
    const sx2 = Math.min(Math.floor(fsx2), ssize - 1);
    const sx1 = Math.min(Math.ceil(fsx1), sx2);
    if (sx1 - fsx1 > 1e-3) taps.push({ dst: dx, src: sx1 - 1, alpha: f((sx1 - fsx1) / cell) });
    for (let sx = sx1; sx < sx2; sx++) taps.push({ dst: dx, src: sx, alpha: f(1 / cell) });
    if (fsx2 - sx2 > 1e-3) {
      taps.push({ dst: dx, src: sx2, alpha: f(Math.min(Math.min(fsx2 - sx2, 1), cell) / cell) });
    }
  }
  return taps;
}

function areaWeighted(
  img: RgbImage,
  width: number,
  height: number,
  scaleX: number,
  scaleY: number,
): RgbImage {
  const xtab = areaTaps(img.width, width, scaleX), ytab = areaTaps(img.height, height, scaleY);
  const data = new Uint8Array(width * height * 3);
  const buf = new Float32Array(width * 3), sum = new Float32Array(width * 3);
  const flush = (dy: number) => {
    for (let i = 0; i < sum.length; i++) data[dy * width * 3 + i] = saturate(sum[i]);
    sum.fill(0);
  };
  let prev = ytab[0].dst;
  for (const { dst: dy, src: sy, alpha: beta } of ytab) {
    buf.fill(0);
    const row = sy * img.width * 3;
    for (const { dst, src, alpha } of xtab) {
      for (let c = 0; c < 3; c++) {
        buf[dst * 3 + c] = f(buf[dst * 3 + c] + f(img.data[row + src * 3 + c] * alpha));
      }
    }
    if (dy !== prev) {
      flush(prev);
      prev = dy;
    }
    for (let i = 0; i < sum.length; i++) sum[i] = f(sum[i] + f(beta * buf[i]));
  }
  flush(prev);
  return { width, height, data };
}
