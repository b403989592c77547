/**
 * Training and validation images, loaded as YOLOv5's load_image + letterbox(auto=False) do, then cached as 8-bit
 * planes (3·imgsz² bytes each, within a memory budget) for later epochs. Without augmentation a larger image is shrunk with
 * INTER_AREA to ceil(w·r) × ceil(h·r) (r = imgsz / long side) and padded with 114 at round(d − 0.1); otherwise
 * (enlarging, or augmenting) src/image's INTER_LINEAR letterbox does it, whose size is round(w·r): at most one
 * pixel narrower than load_image's ceil. Box conversions follow YOLOv5's float32 label arithmetic (xywhn2xy with
 * the float pad, xyxy2xywhn clipped to [0, size − 1e-3]).
 */
import { decodeImage, type RgbImage } from "../../image/decode.ts";
import { type Letterbox, letterbox, PAD_VALUE, roundHalfEven } from "../../image/letterbox.ts";
import type { Sample } from "./dataset.ts";
import { resizeArea } from "./resize_area.ts";

/** An 8-bit image stored channel-planar (RGB planes), like the NCHW tensor it becomes. */
export interface PlanarImage {
  width: number;
  height: number;
  data: Uint8Array;
}

export interface LoadedImage {
  square: PlanarImage;
  box: Letterbox;
}

const f = Math.fround;
const UNIT = Float32Array.from({ length: 256 }, (_, v) => v / 255);

/** Default memory for cached images: about 880 squares at 640, 3500 at 320. */
export const DEFAULT_IMAGE_CACHE_BYTES = 1024 * 1024 * 1024;

/**
 * Loads images and keeps the most recently used ones within a byte budget (least recently used evicted first),
 * so a dataset larger than memory is decoded again each epoch instead of exhausting it.
 */
export class ImageStore {
  // A Map iterates in insertion order: re-inserting on every hit keeps the least recently used first.
  private readonly cache = new Map<string, LoadedImage>();
  private bytes = 0;

  constructor(
    readonly imgsz: number,
    readonly augment: boolean,
    readonly budgetBytes = DEFAULT_IMAGE_CACHE_BYTES,
  ) {}

  /** Bytes of pixels held now (never over budgetBytes). */
  get cachedBytes(): number {
    return this.bytes;
  }

  async load(sample: Sample): Promise<LoadedImage> {
    const hit = this.cache.get(sample.imagePath);
    if (hit) {
      this.cache.delete(sample.imagePath);
      this.cache.set(sample.imagePath, hit);
      return hit;
    }
    const loaded = loadSquare(
      await decodeImage(await Deno.readFile(sample.imagePath)),
      this.imgsz,
      this.augment,
    );
    const size = loaded.square.data.byteLength;
    if (size > this.budgetBytes || this.cache.has(sample.imagePath)) return loaded;
    for (const [path, old] of this.cache) {
      if (this.bytes + size <= this.budgetBytes) break;
      this.cache.delete(path);
      this.bytes -= old.square.data.byteLength;
    }
    this.cache.set(sample.imagePath, loaded);
    this.bytes += size;
    return loaded;
  }
}

/** load_image + letterbox of one decoded image into the imgsz square. */
export function loadSquare(img: RgbImage, imgsz: number, augment: boolean): LoadedImage {
  const r = imgsz / Math.max(img.width, img.height);
  const [w, h] = [Math.ceil(img.width * r), Math.ceil(img.height * r)];
  if (!augment && r < 1 && w <= imgsz && h <= imgsz) return pad(resizeArea(img, w, h), imgsz);
  const { tensor, box } = letterbox(img, imgsz);
  const data = new Uint8Array(tensor.length);
  for (let i = 0; i < data.length; i++) data[i] = Math.round(tensor[i] * 255);
  return { square: { width: imgsz, height: imgsz, data }, box };
}

function pad(img: RgbImage, size: number): LoadedImage {
  const box = {
    size,
    width: img.width,
    height: img.height,
    left: roundHalfEven((size - img.width) / 2 - 0.1),
    top: roundHalfEven((size - img.height) / 2 - 0.1),
  };
  const plane = size * size;
  const data = new Uint8Array(3 * plane).fill(PAD_VALUE);
  for (let y = 0; y < img.height; y++) {
    for (let x = 0; x < img.width; x++) {
      const o = (box.top + y) * size + box.left + x;
      for (let c = 0; c < 3; c++) data[c * plane + o] = img.data[(y * img.width + x) * 3 + c];
    }
  }
  return { square: { width: size, height: size, data }, box };
}

/** The resized image without its padding: YOLOv5's load_image (long side = imgsz). */
export function unpadded({ square, box }: LoadedImage): PlanarImage {
  const data = new Uint8Array(3 * box.width * box.height);
  for (let c = 0; c < 3; c++) {
    for (let y = 0; y < box.height; y++) {
      const src = c * square.width * square.height + (box.top + y) * square.width + box.left;
      data.set(square.data.subarray(src, src + box.width), (c * box.height + y) * box.width);
    }
  }
  return { width: box.width, height: box.height, data };
}

/** Writes `img` as float32 /255 planes into `out` at `offset` (the torch `imgs.float() / 255`). */
export function writeTensor(img: PlanarImage, out: Float32Array, offset: number): void {
  for (let i = 0; i < img.data.length; i++) out[offset + i] = UNIT[img.data[i]];
}

/** xywhn2xy: normalised [cls, cx, cy, w, h] rows -> pixel [cls, x1, y1, x2, y2] rows of a w×h image at (padw, padh). */
export function toPixels(
  labels: Float32Array,
  w: number,
  h: number,
  padw: number,
  padh: number,
): Float32Array {
  const out = new Float32Array(labels.length);
  for (let o = 0; o < labels.length; o += 5) {
    const [cx, cy, bw, bh] = [labels[o + 1], labels[o + 2], labels[o + 3], labels[o + 4]];
    out[o] = labels[o];
    out[o + 1] = f(f(w * f(cx - f(bw / 2))) + padw);
    out[o + 2] = f(f(h * f(cy - f(bh / 2))) + padh);
    out[o + 3] = f(f(w * f(cx + f(bw / 2))) + padw);
    out[o + 4] = f(f(h * f(cy + f(bh / 2))) + padh);
  }
  return out;
}

/** Pixel rows of the letterboxed square: the float pad (dw, dh) is used, as YOLOv5's labels do. */
export function letterboxLabels(labels: Float32Array, box: Letterbox): Float32Array {
  return toPixels(labels, box.width, box.height, (box.size - box.width) / 2, (box.size - box.height) / 2);
}

/** xyxy2xywhn(clip=True, eps=1e-3): pixel rows -> normalised [cls, cx, cy, w, h] of a w×h image. */
export function toNormalized(rows: Float32Array, w: number, h: number): Float32Array {
  const out = new Float32Array(rows.length);
  const clip = (v: number, hi: number) => Math.min(Math.max(v, 0), f(hi - 1e-3));
  for (let o = 0; o < rows.length; o += 5) {
    const [x1, y1, x2, y2] = [
      clip(rows[o + 1], w),
      clip(rows[o + 2], h),
      clip(rows[o + 3], w),
      clip(rows[o + 4], h),
    ];
    out[o] = rows[o];
    out[o + 1] = f(f(f(x1 + x2) / 2) / w);
    out[o + 2] = f(f(f(y1 + y2) / 2) / h);
    out[o + 3] = f(f(x2 - x1) / w);
    out[o + 4] = f(f(y2 - y1) / h);
  }
  return out;
}
