/**
 * A synthetic detection dataset the project can make on any machine: circles, squares and triangles of random
 * colour and size on noisy random backgrounds, written in YOLO layout (images/*.png, labels/*.txt, data.yaml).
 * Everything follows from the seed, so the same arguments always give byte-identical files. It trains the
 * embedded default model and feeds tests that need real pixels.
 */
import sharp from "sharp";
import { join } from "node:path";
import { Rng } from "./data/rng.ts";

export const SYNTH_CLASSES = ["circle", "square", "triangle"] as const;

/** Knobs of an image's content; the defaults make the default model's training data. */
export interface SynthShape {
  /** shape sizes as a fraction of the image side (defaults MIN_SIZE, MAX_SIZE) */
  minSize?: number;
  maxSize?: number;
}

export interface SynthOptions extends SynthShape {
  n: number;
  imgsz: number;
  seed: number;
}

/** One image: RGB interleaved pixels and its labels [cls, cx, cy, w, h] (normalised). */
export interface SynthImage {
  rgb: Uint8Array;
  labels: number[][];
}

/** Objects per image, and their size as a fraction of the image side. */
const MAX_OBJECTS = 4;
const MIN_SIZE = 0.12, MAX_SIZE = 0.4;
/** Objects may overlap a little (IoU below this) so every box stays visibly its own. */
const MAX_OVERLAP = 0.1;
const NOISE = 24;

export function synthImage(imgsz: number, rng: Rng, shape: SynthShape = {}): SynthImage {
  const { minSize = MIN_SIZE, maxSize = MAX_SIZE } = shape;
  const base = [0, 1, 2].map(() => 40 + rng.int(176));
  const grad = [0, 1, 2].map(() => rng.uniform(-40, 40));
  const rgb = new Uint8Array(imgsz * imgsz * 3);
  for (let y = 0; y < imgsz; y++) {
    for (let x = 0; x < imgsz; x++) {
      for (let c = 0; c < 3; c++) {
        const v = base[c] + grad[c] * (x / imgsz - 0.5) + rng.uniform(-NOISE, NOISE);
        rgb[(y * imgsz + x) * 3 + c] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  const boxes: number[][] = [];
  const labels: number[][] = [];
  const count = 1 + rng.int(MAX_OBJECTS);
  for (let tries = 0; labels.length < count && tries < 50; tries++) {
    const cls = rng.int(SYNTH_CLASSES.length);
    const size = Math.round(rng.uniform(minSize, maxSize) * imgsz);
    const x0 = rng.int(imgsz - size), y0 = rng.int(imgsz - size);
    const box = [x0, y0, x0 + size, y0 + size];
    if (boxes.some((b) => iou(b, box) > MAX_OVERLAP)) continue;
    // a colour far from the background so every shape is learnable
    const colour = base.map((v) => (v + 80 + rng.int(96)) % 256);
    const [l, t, r, b] = draw(rgb, imgsz, cls, box, colour);
    boxes.push(box);
    labels.push([cls, (l + r) / 2 / imgsz, (t + b) / 2 / imgsz, (r - l) / imgsz, (b - t) / imgsz]);
  }
  return { rgb, labels };
}

/** Fills pixels whose centre lies inside the shape; returns the painted pixels' extent [x1, y1, x2, y2). */
function draw(
  rgb: Uint8Array,
  imgsz: number,
  cls: number,
  [x0, y0, x1, y1]: number[],
  colour: number[],
): number[] {
  const size = x1 - x0, cx = (x0 + x1) / 2, r = size / 2;
  const inside = (px: number, py: number) => {
    if (cls === 0) return (px - cx) ** 2 + (py - (y0 + r)) ** 2 <= r * r;
    if (cls === 1) return true;
    // triangle with its apex at the top centre and base along the bottom
    return Math.abs(px - cx) <= ((py - y0) / size) * r;
  };
  const extent = [x1, y1, x0, y0];
  for (let y = y0; y < y1; y++) {
    for (let x = x0; x < x1; x++) {
      if (!inside(x + 0.5, y + 0.5)) continue;
      rgb.set(colour, (y * imgsz + x) * 3);
      extent[0] = Math.min(extent[0], x), extent[1] = Math.min(extent[1], y);
      extent[2] = Math.max(extent[2], x + 1), extent[3] = Math.max(extent[3], y + 1);
    }
  }
  return extent;
}

function iou(a: number[], b: number[]): number {
  const w = Math.max(0, Math.min(a[2], b[2]) - Math.max(a[0], b[0]));
  const h = Math.max(0, Math.min(a[3], b[3]) - Math.max(a[1], b[1]));
  const area = (q: number[]) => (q[2] - q[0]) * (q[3] - q[1]);
  return (w * h) / (area(a) + area(b) - w * h);
}

/** Writes `opts.n` images in YOLO layout under `out`; returns the image file names. */
export async function writeSynthDataset(out: string, opts: SynthOptions): Promise<string[]> {
  await Deno.mkdir(join(out, "images"), { recursive: true });
  await Deno.mkdir(join(out, "labels"), { recursive: true });
  const rng = new Rng(opts.seed);
  const names: string[] = [];
  const digits = Math.max(4, String(opts.n - 1).length);
  for (let i = 0; i < opts.n; i++) {
    const stem = `shapes_${String(i).padStart(digits, "0")}`;
    const { rgb, labels } = synthImage(opts.imgsz, rng, opts);
    const raw = { width: opts.imgsz, height: opts.imgsz, channels: 3 as const };
    await Deno.writeFile(join(out, "images", `${stem}.png`), await sharp(rgb, { raw }).png().toBuffer());
    const text = labels.map(([c, ...v]) => `${c} ${v.map((x) => x.toFixed(6)).join(" ")}\n`).join("");
    await Deno.writeTextFile(join(out, "labels", `${stem}.txt`), text);
    names.push(`${stem}.png`);
  }
  await Deno.writeTextFile(
    join(out, "data.yaml"),
    `# ${opts.n} synthetic images at ${opts.imgsz}px, seed ${opts.seed}\nnc: ${SYNTH_CLASSES.length}\n` +
      `names: [${SYNTH_CLASSES.join(", ")}]\n`,
  );
  return names;
}
