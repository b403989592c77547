/**
 * A person's labels for a capture: checked against the model's classes and the frame's size, given a split
 * (by default a stable hash of the id sends 1 in 10 to val, so relabelling never moves a frame between splits),
 * and turned into YOLO label rows.
 */
import type { CaptureLabel, CaptureMeta, CaptureSplit } from "./types.ts";

/** One in this many captures goes to val by default. */
export const VAL_ONE_IN = 10;

/** Problems with `labels` for `meta` under a model of `nc` classes; empty when they are fine. */
export function labelProblems(labels: readonly CaptureLabel[], meta: CaptureMeta, nc: number): string[] {
  const problems: string[] = [];
  labels.forEach(({ class_id, box }, i) => {
    const at = `labels[${i}]`;
    if (!Number.isInteger(class_id) || class_id < 0 || class_id >= nc) {
      problems.push(`${at}.class_id ${class_id} is not a class of this model (0..${nc - 1})`);
    }
    if (!(box.x1 >= 0 && box.y1 >= 0 && box.x2 <= meta.width && box.y2 <= meta.height)) {
      problems.push(`${at}.box lies outside the ${meta.width}x${meta.height} image`);
    }
    if (!(box.x2 > box.x1 && box.y2 > box.y1)) {
      problems.push(`${at}.box is empty (needs x2 > x1 and y2 > y1)`);
    }
  });
  return problems;
}

/** FNV-1a of the id, so the default split is the same on every server and every run. */
export function defaultSplit(id: string): CaptureSplit {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) hash = Math.imul(hash ^ id.charCodeAt(i), 0x01000193) >>> 0;
  return hash % VAL_ONE_IN === 0 ? "val" : "train";
}

/** The YOLO label file: `class cx cy w h` per line, normalised to the image size. */
export function yoloLabelText(meta: CaptureMeta): string {
  return (meta.labels ?? []).map(({ class_id, box }) => {
    const values = [
      (box.x1 + box.x2) / 2 / meta.width,
      (box.y1 + box.y2) / 2 / meta.height,
      (box.x2 - box.x1) / meta.width,
      (box.y2 - box.y1) / meta.height,
    ];
    return `${class_id} ${values.map((v) => v.toFixed(6)).join(" ")}\n`;
  }).join("");
}
