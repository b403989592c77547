// Tests that need the large reference data (src/config/reference_dir.ts: KESTREL_REFERENCE_DIR, default ../shared)
// declare the files they read once per test file; where any is absent their tests are skipped (Deno.test's
// `ignore`) and one line says what was skipped and how to get the data, instead of failing or hanging.
import { relative } from "node:path";
import { fileURLToPath } from "node:url";
import {
  missingReferenceFiles,
  missingReferenceMessage,
  referencePath,
  referenceUrl,
} from "../../src/config/reference_dir.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

export interface ReferenceData {
  /** True where a file the test file needs is absent: pass it as Deno.test's `ignore`. */
  readonly missing: boolean;
  url(file: string): URL;
  path(file: string): string;
}

/**
 * The reference files `testModule` (its import.meta.url) reads. Prints one skip line for the file when any is
 * missing; `files` are relative to the reference folder ("models/yolov5n.onnx", "golden/finetune-sgd/").
 */
export function referenceData(testModule: string, ...files: string[]): ReferenceData {
  const missing = missingReferenceFiles(files);
  if (missing.length) {
    console.log(
      `SKIPPED tests of ${relative(ROOT, fileURLToPath(testModule))}: ${missingReferenceMessage(missing)}`,
    );
  }
  return { missing: missing.length > 0, url: referenceUrl, path: referencePath };
}

/** The test name, marked where the reference data is missing (so the ignored line says why). */
export function referenceName(name: string, data: ReferenceData): string {
  return data.missing ? `${name} (skipped: no reference data)` : name;
}

/** Deno.test over reference data: skipped, with the reason in its name, where the data is missing. */
export function referenceTest(
  data: ReferenceData,
  name: string,
  fn: () => Promise<void> | void,
  options: Omit<Deno.TestDefinition, "name" | "fn" | "ignore"> = {},
): void {
  Deno.test({ ...options, name: referenceName(name, data), ignore: data.missing, fn });
}
