/**
 * The JSON form of a fine-tune upload (`images: [{name, data: base64, labels: [[cls, cx, cy, w, h], ...]}]`)
 * written out in YOLO layout, so it goes through the same loadDataset validation as an archive. Problems found here
 * (unsafe or duplicate names, bad base64, label rows that are not 5 numbers) are collected into one DatasetError;
 * class ids and coordinates are checked later by loadDataset, against the label files written here.
 */
import { join } from "node:path";
import { safePath } from "./archive_target.ts";
import { IMAGE_EXTENSIONS } from "./layout.ts";
import { DatasetError, type DatasetProblem } from "./problems.ts";

export interface InlineImage {
  name: string;
  /** the encoded image file (JPEG, PNG, WebP), base64 */
  data: string;
  labels: number[][];
}

/** Writes `images` under dest/images and dest/labels; returns dest for loadDataset. */
export async function writeInlineDataset(images: readonly InlineImage[], dest: string): Promise<string> {
  const problems: DatasetProblem[] = [];
  const files: { name: string; bytes: Uint8Array; text: string }[] = [];
  const seen = new Set<string>();
  for (const [i, img] of images.entries()) {
    const file = `images[${i}] (${img.name})`;
    const name = safePath(img.name ?? "");
    const ext = name ? name.slice(name.lastIndexOf(".")).toLowerCase() : "";
    const bytes = decode(img.data);
    const bad = (img.labels ?? []).findIndex((row) => !Array.isArray(row) || row.length !== 5);
    let message = "", line: number | undefined;
    if (!name || !IMAGE_EXTENSIONS.includes(ext)) {
      message = `name must be a relative path ending in ${IMAGE_EXTENSIONS.join(", ")}`;
    } else if (seen.has(name)) message = "duplicate image name";
    else if (!bytes) message = "data is not valid base64";
    else if (bad >= 0) [message, line] = ["a label must be [cls, cx, cy, w, h]", bad + 1];
    if (message) {
      problems.push({ file, line, message });
      continue;
    }
    seen.add(name!);
    files.push({ name: name!, bytes: bytes!, text: img.labels.map((row) => `${row.join(" ")}\n`).join("") });
  }
  if (problems.length) throw new DatasetError(problems);
  for (const { name, bytes, text } of files) {
    const image = join(dest, "images", name);
    const label = join(dest, "labels", `${name.slice(0, name.lastIndexOf("."))}.txt`);
    await Deno.mkdir(join(image, ".."), { recursive: true });
    await Deno.mkdir(join(label, ".."), { recursive: true });
    await Deno.writeFile(image, bytes);
    await Deno.writeTextFile(label, text);
  }
  return dest;
}

function decode(data: string): Uint8Array | null {
  try {
    return Uint8Array.from(atob(data ?? ""), (ch) => ch.charCodeAt(0));
  } catch {
    return null;
  }
}
