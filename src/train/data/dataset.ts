/**
 * Opens and validates a YOLO-layout dataset: every image must decode, every label line must be well formed with a
 * class id below nc and coordinates in 0..1, and there must be something to train on. All problems are collected
 * and thrown together as one DatasetError. Pixels are not kept: the loader decodes (and caches) what it needs.
 */
import { decodeImage } from "../../image/decode.ts";
import { type LabelRows, parseLabels } from "./labels.ts";
import { readLayout, type SampleRef } from "./layout.ts";
import { DatasetError, type DatasetProblem } from "./problems.ts";

/** A validated image: its file, its label rows ([cls, cx, cy, w, h] normalised) and its decoded size. */
export interface Sample extends SampleRef {
  labels: LabelRows;
  width: number;
  height: number;
}

export interface Dataset {
  root: string;
  nc: number;
  train: Sample[];
  val: Sample[];
}

export interface DatasetOptions {
  nc: number;
  /** Share of the (sorted) images held out for validation when the dataset has no val split; 0 = none. */
  valFraction?: number;
  /** Largest image (width x height from its header, read before decoding) accepted; the server's --max-pixels. */
  maxPixels?: number;
}

export async function loadDataset(dir: string, opts: DatasetOptions): Promise<Dataset> {
  const problems: DatasetProblem[] = [];
  let layout;
  try {
    layout = await readLayout(dir, opts.valFraction ?? 0, problems);
  } catch (err) {
    throw new DatasetError([{
      file: ".",
      message: `cannot read dataset directory: ${(err as Error).message}`,
    }]);
  }
  const check = async (refs: SampleRef[]) => {
    const out: Sample[] = [];
    for (const ref of refs) {
      const sample = await checkSample(ref, layout.root, opts, problems);
      if (sample) out.push(sample);
    }
    return out;
  };
  const train = await check(layout.train);
  const val = await check(layout.val);
  if (layout.train.length === 0) {
    problems.push({
      file: ".",
      message: "empty dataset: no images under images/ (YOLO layout: images/ + labels/)",
    });
  }
  if (problems.length) throw new DatasetError(problems);
  return { root: layout.root, nc: opts.nc, train, val };
}

async function checkSample(ref: SampleRef, root: string, opts: DatasetOptions, problems: DatasetProblem[]) {
  let ok = true;
  let labels: LabelRows = new Float32Array();
  if (ref.labelPath) {
    const file = ref.labelPath.slice(root.length + 1);
    try {
      const before = problems.length;
      labels = parseLabels(await Deno.readTextFile(ref.labelPath), opts.nc, file, problems);
      ok = problems.length === before;
    } catch (err) {
      problems.push({ file, message: `unreadable label file: ${(err as Error).message}` });
      ok = false;
    }
  }
  try {
    const image = await decodeImage(await Deno.readFile(ref.imagePath), opts.maxPixels);
    return ok ? { ...ref, labels, width: image.width, height: image.height } : null;
  } catch (err) {
    problems.push({ file: ref.name, message: `image does not decode: ${(err as Error).message}` });
    return null;
  }
}
