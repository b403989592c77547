/**
 * Where the large reference data lives: the real ultralytics YOLOv5n export (models/yolov5n.onnx), PyTorch golden
 * runs (golden/), photos (images/) and reference detections (reference/). It is too large for the repository and
 * is not needed to build, serve or fine-tune: only the parity tests and some benches read it, and they skip,
 * saying so, where it is absent. Looked up in KESTREL_REFERENCE_DIR, else in ../shared beside the repository root
 * (resolved from this file, so the working directory does not matter).
 */
import { resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const REFERENCE_DIR_ENV = "KESTREL_REFERENCE_DIR";

const DEFAULT_REFERENCE_DIR = new URL("../../../shared/", import.meta.url);

/** The reference data folder as a directory URL (with a trailing slash, so relative URLs resolve inside it). */
export function referenceDir(): URL {
  const fromEnv = Deno.env.get(REFERENCE_DIR_ENV);
  if (!fromEnv) return DEFAULT_REFERENCE_DIR;
  const url = pathToFileURL(resolve(fromEnv));
  return url.href.endsWith("/") ? url : new URL(`${url.href}/`);
}

/** A file of the reference data, e.g. `referenceUrl("models/yolov5n.onnx")`. */
export function referenceUrl(relative: string): URL {
  return new URL(relative, referenceDir());
}

/** The same as a file-system path. */
export function referencePath(relative: string): string {
  return fileURLToPath(referenceUrl(relative));
}

/** Which of these reference files (or folders) are absent; empty when all are there. */
export function missingReferenceFiles(relatives: readonly string[]): string[] {
  return relatives.filter((relative) => {
    try {
      Deno.statSync(referenceUrl(relative));
      return false;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return true;
      throw err;
    }
  });
}

/** One sentence saying what is missing and how to provide it, for skip lines. */
export function missingReferenceMessage(missing: readonly string[]): string {
  return `needs ${missing.join(", ")} from the reference data, not in ${fileURLToPath(referenceDir())}; ` +
    `set ${REFERENCE_DIR_ENV} to the folder that holds it (README: Reference data)`;
}
