import assert from "node:assert/strict";
import { join } from "node:path";
import {
  missingReferenceFiles,
  missingReferenceMessage,
  REFERENCE_DIR_ENV,
  referenceDir,
  referencePath,
} from "../../src/config/reference_dir.ts";

/** Runs `fn` with KESTREL_REFERENCE_DIR set (or unset) and the working directory at `cwd`, then restores both. */
function withSetting(value: string | undefined, cwd: string, fn: () => void): void {
  const saved = Deno.env.get(REFERENCE_DIR_ENV);
  const savedCwd = Deno.cwd();
  try {
    if (value === undefined) Deno.env.delete(REFERENCE_DIR_ENV);
    else Deno.env.set(REFERENCE_DIR_ENV, value);
    Deno.chdir(cwd);
    fn();
  } finally {
    Deno.chdir(savedCwd);
    if (saved === undefined) Deno.env.delete(REFERENCE_DIR_ENV);
    else Deno.env.set(REFERENCE_DIR_ENV, saved);
  }
}

Deno.test("referenceDir() defaults to ../shared beside the repository, whatever the working directory", () => {
  const beside = new URL("../../../shared/", import.meta.url).href;
  const tmp = Deno.makeTempDirSync();
  withSetting(undefined, tmp, () => assert.equal(referenceDir().href, beside));
  withSetting("", "/", () => assert.equal(referenceDir().href, beside));
  Deno.removeSync(tmp);
});

Deno.test("referenceDir() takes KESTREL_REFERENCE_DIR, relative to the working directory, as a folder", () => {
  const tmp = Deno.makeTempDirSync();
  withSetting("data/ref", tmp, () => {
    assert.equal(referenceDir().href, `file://${tmp}/data/ref/`);
    assert.equal(referencePath("models/yolov5n.onnx"), join(tmp, "data/ref/models/yolov5n.onnx"));
  });
  withSetting(`${tmp}/abs/`, "/", () => assert.equal(referenceDir().href, `file://${tmp}/abs/`));
  Deno.removeSync(tmp, { recursive: true });
});

Deno.test("missingReferenceFiles() lists what is absent and the message says how to provide it", () => {
  const tmp = Deno.makeTempDirSync();
  Deno.mkdirSync(join(tmp, "golden/finetune-sgd"), { recursive: true });
  withSetting(tmp, "/", () => {
    assert.deepEqual(missingReferenceFiles(["golden/finetune-sgd/", "models/yolov5n.onnx"]), [
      "models/yolov5n.onnx",
    ]);
    assert.deepEqual(missingReferenceFiles(["golden/finetune-sgd/"]), []);
    const message = missingReferenceMessage(["models/yolov5n.onnx"]);
    assert.match(message, /models\/yolov5n\.onnx/);
    assert.ok(message.includes(tmp) && message.includes(REFERENCE_DIR_ENV), message);
  });
  Deno.removeSync(tmp, { recursive: true });
});
