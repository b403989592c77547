/**
 * A model's labelled captures as a YOLO dataset in ultralytics' split layout (images/{train,val},
 * labels/{train,val}, data.yaml), the layout both the trainer's reader and ultralytics `train.py` accept: written
 * to a directory for a fine-tune job, or streamed as a zip for export.
 */
import { Zip, ZipPassThrough } from "fflate";
import { dirname, join } from "node:path";
import { yoloLabelText } from "./labels.ts";
import type { CaptureStore } from "./store.ts";
import type { CaptureMeta, CaptureSplit } from "./types.ts";

const EXTENSION = { jpeg: "jpg", png: "png", webp: "webp" } as const;

/** Where a labelled capture's image and YOLO label file go in the dataset (also for a fleet's captures). */
export function capturePaths(meta: CaptureMeta): { image: string; label: string } {
  const split = meta.split ?? "train";
  return {
    image: `images/${split}/${meta.id}.${EXTENSION[meta.format]}`,
    label: `labels/${split}/${meta.id}.txt`,
  };
}

/** One file of the dataset; `data` reads it when it is written (images are read one at a time). */
interface DatasetEntry {
  path: string;
  data: () => Promise<Uint8Array>;
}

/** The labelled captures of `model` (of one split, when given), oldest first. */
export function labelledCaptures(store: CaptureStore, model: string, split?: CaptureSplit): CaptureMeta[] {
  return store.all({ model, status: "labelled", split });
}

function entries(store: CaptureStore, captures: CaptureMeta[], names: readonly string[]): DatasetEntry[] {
  const text = (s: string) => () => Promise.resolve(new TextEncoder().encode(s));
  const files: DatasetEntry[] = [{
    path: "data.yaml",
    data: text(
      `path: .\ntrain: images/train\nval: images/val\nnc: ${names.length}\nnames: ${JSON.stringify(names)}\n`,
    ),
  }];
  for (const meta of captures) {
    const paths = capturePaths(meta);
    files.push(
      { path: paths.image, data: () => store.image(meta.id) },
      { path: paths.label, data: text(yoloLabelText(meta)) },
    );
  }
  return files;
}

/**
 * Replay: the train captures of this round (captured at or after `since`, when the base version was made) and
 * as many of the earlier rounds' as make up `fraction` of the result, drawn at random (`random` in [0, 1)).
 * A round with no new capture, or a fraction of 1, replays every earlier one.
 */
export function withReplay(
  train: readonly CaptureMeta[],
  since: Date,
  fraction: number,
  random: () => number,
): CaptureMeta[] {
  const fresh = train.filter((c) => new Date(c.time) >= since);
  const earlier = train.filter((c) => new Date(c.time) < since);
  const wanted = fresh.length === 0 || fraction >= 1
    ? earlier.length
    : Math.min(earlier.length, Math.round(fresh.length * fraction / (1 - fraction)));
  // A partial Fisher-Yates: the first `wanted` places end up a uniform draw.
  const pool = [...earlier];
  for (let i = 0; i < wanted; i++) {
    const j = i + Math.floor(random() * (pool.length - i));
    [pool[i], pool[j]] = [pool[j], pool[i]];
  }
  return [...fresh, ...pool.slice(0, wanted)];
}

/**
 * Writes `captures` (default: the labelled captures of `model`, of one split when given) under `dir`; returns
 * how many per split.
 */
export async function writeCaptureDataset(
  store: CaptureStore,
  model: string,
  names: readonly string[],
  dir: string,
  split?: CaptureSplit,
  captures: CaptureMeta[] = labelledCaptures(store, model, split),
): Promise<{ train: number; val: number }> {
  for (const entry of entries(store, captures, names)) {
    const path = join(dir, entry.path);
    await Deno.mkdir(dirname(path), { recursive: true });
    await Deno.writeFile(path, await entry.data());
  }
  const val = captures.filter((c) => c.split === "val").length;
  return { train: captures.length - val, val };
}

/**
 * The labelled captures of `model` as a zip stream. Entries are stored, not deflated (the images are already
 * compressed), and produced one file per pull, so an export of any size holds one image in memory.
 */
export function captureDatasetZip(
  store: CaptureStore,
  model: string,
  names: readonly string[],
): ReadableStream<Uint8Array> {
  const files = entries(store, labelledCaptures(store, model), names);
  let next = 0;
  let zip: Zip;
  return new ReadableStream<Uint8Array>({
    start(controller) {
      zip = new Zip((err, chunk, final) => {
        if (err) return controller.error(err);
        controller.enqueue(chunk);
        if (final) controller.close();
      });
    },
    async pull() {
      if (next === files.length) return zip.end();
      const entry = files[next++];
      const file = new ZipPassThrough(entry.path);
      zip.add(file);
      file.push(await entry.data(), true);
    },
  });
}
