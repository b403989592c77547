/**
 * Finds the images and label files of a YOLO-layout dataset directory and splits them into train and val:
 *   root/images/**, root/labels/** (same relative path, .txt)        - everything is train
 *   root/val/images/**, root/val/labels/**                            - an explicit val split beside it
 *   root/images/{train,val}/**, root/labels/{train,val}/**            - ultralytics' own split layout
 * A root that only wraps one folder holding that layout (a zipped folder) is descended into. Without an explicit val
 * split, `valFraction` holds out images evenly spread over the sorted names, so the split is deterministic.
 */
import { join, relative } from "node:path";
import type { DatasetProblem } from "./problems.ts";

/** One image and its label file (null: no file, i.e. a background image). Paths are absolute; `name` relative. */
export interface SampleRef {
  name: string;
  imagePath: string;
  labelPath: string | null;
}

export interface DatasetLayout {
  root: string;
  train: SampleRef[];
  val: SampleRef[];
}

/** The formats the image decoder reads. */
export const IMAGE_EXTENSIONS = [".jpg", ".jpeg", ".png", ".webp"];
const IGNORED = (name: string) => name.startsWith(".") || name === "__MACOSX";

export async function readLayout(
  root: string,
  valFraction: number,
  problems: DatasetProblem[],
): Promise<DatasetLayout> {
  root = await datasetRoot(root);
  let train: SampleRef[], val: SampleRef[];
  if (await isDir(join(root, "images", "train"))) {
    train = await split(root, join(root, "images", "train"), join(root, "labels", "train"), problems);
    val = await split(root, join(root, "images", "val"), join(root, "labels", "val"), problems);
  } else {
    train = await split(root, join(root, "images"), join(root, "labels"), problems);
    val = await split(root, join(root, "val", "images"), join(root, "val", "labels"), problems);
  }
  const used = new Set([...train, ...val].map((s) => s.name));
  for (const rel of await listFiles(root)) {
    if (!used.has(rel) && IMAGE_EXTENSIONS.some((e) => rel.toLowerCase().endsWith(e))) {
      problems.push({
        file: rel,
        message: "image outside images/ (or val/images/, images/{train,val}/) is not used",
      });
    }
  }
  if (val.length === 0 && valFraction > 0) [train, val] = holdOut(train, valFraction);
  return { root, train, val };
}

/** Every k-th image of the sorted list (k = 1/fraction, spread evenly), at least one, never all of them. */
export function holdOut(samples: SampleRef[], fraction: number): [SampleRef[], SampleRef[]] {
  if (samples.length < 2) return [samples, []];
  const train: SampleRef[] = [], val: SampleRef[] = [];
  const nVal = Math.min(samples.length - 1, Math.max(1, Math.round(samples.length * fraction)));
  samples.forEach((s, i) => {
    const picked = Math.floor(((i + 1) * nVal) / samples.length) > Math.floor((i * nVal) / samples.length);
    (picked ? val : train).push(s);
  });
  return [train, val];
}

async function datasetRoot(root: string): Promise<string> {
  if (await isDir(join(root, "images"))) return root;
  const entries = [];
  for await (const e of Deno.readDir(root)) if (!IGNORED(e.name)) entries.push(e);
  if (entries.length === 1 && entries[0].isDirectory && await isDir(join(root, entries[0].name, "images"))) {
    return join(root, entries[0].name);
  }
  return root;
}

async function split(root: string, imageDir: string, labelDir: string, problems: DatasetProblem[]) {
  const images = await listFiles(imageDir);
  const labels = new Set(await listFiles(labelDir));
  const samples: SampleRef[] = [];
  for (const rel of images) {
    const dot = rel.lastIndexOf(".");
    const ext = dot >= 0 ? rel.slice(dot).toLowerCase() : "";
    const name = relative(root, join(imageDir, rel));
    if (!IMAGE_EXTENSIONS.includes(ext)) {
      problems.push({ file: name, message: `not a supported image type (${IMAGE_EXTENSIONS.join(", ")})` });
      continue;
    }
    const label = `${rel.slice(0, dot)}.txt`;
    samples.push({
      name,
      imagePath: join(imageDir, rel),
      labelPath: labels.delete(label) ? join(labelDir, label) : null,
    });
  }
  for (const orphan of labels) {
    problems.push({
      file: relative(root, join(labelDir, orphan)),
      message: "label file without a matching image",
    });
  }
  return samples;
}

/** Files under `dir` (recursively), relative to it, sorted by name; [] when `dir` does not exist. */
async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  if (!(await isDir(dir))) return [];
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (IGNORED(e.name)) continue;
    if (e.isDirectory) out.push(...await listFiles(join(dir, e.name), join(prefix, e.name)));
    else if (e.isFile) out.push(join(prefix, e.name));
  }
  return out.sort(byName);
}

/** Byte-wise (code unit) order, like Python's sorted() over str, which YOLOv5's file lists use. */
export function byName(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

async function isDir(path: string): Promise<boolean> {
  try {
    return (await Deno.stat(path)).isDirectory;
  } catch {
    return false;
  }
}
