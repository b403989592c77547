import assert from "node:assert/strict";
import { DEFAULT_MODEL_PATH } from "../../src/config/server.ts";
import { defaultImageDecoder } from "../../src/image/decode.ts";
import { detectCheck, testImage } from "../../src/selftest/self_test.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { readModelSpec } from "../../src/serving/model_spec.ts";
import { ensureRuntimeDir } from "../../src/gpu/runtime_dir.ts";

const ROOT = new URL("../../", import.meta.url);
ensureRuntimeDir();
const HAS_ADAPTER = (await navigator.gpu?.requestAdapter()) != null;
/** The doctor's self-test is one detect and one training step of a 128-px model: seconds even on lavapipe. */
const DOCTOR_LIMIT_MS = 120_000;
const CHECKS = [
  "platform",
  "deno",
  "jpeg decoder",
  "webgpu adapter",
  "conv kernels",
  "inference backend",
  "self-test detect",
  "self-test training step",
  "free disk",
];

async function doctor(...args: string[]): Promise<{ code: number; lines: string[] }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "doctor", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(DOCTOR_LIMIT_MS),
  }).output();
  const out = new TextDecoder().decode(stdout);
  assert.ok(out.length > 0, new TextDecoder().decode(stderr));
  return { code, lines: out.trim().split("\n") };
}

Deno.test({
  name: HAS_ADAPTER
    ? "kestrel doctor passes every check on this box and exits 0"
    : "kestrel doctor fails the adapter and training checks on a box without WebGPU and exits 1",
  sanitizeResources: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "kestrel-doctor-" });
    const { code, lines } = await doctor("--data-dir", dataDir);
    for (const name of CHECKS) {
      assert.ok(lines.some((l) => l.includes(` ${name}: `)), `no '${name}' line:\n${lines.join("\n")}`);
    }
    // The doctor loads libturbojpeg as this process does (same library path, same environment).
    assert.ok(lines.includes(`ok   jpeg decoder: ${defaultImageDecoder().jpegDecoder}`), lines.join("\n"));
    const failed = lines.filter((l) => l.startsWith("FAIL"));
    if (HAS_ADAPTER) {
      assert.deepEqual(failed, []);
      assert.equal(code, 0);
      assert.match(lines.join("\n"), /ok {3}self-test detect: \w+: found (\d+) of \1 drawn shapes/);
      assert.match(
        lines.join("\n"),
        /ok {3}conv kernels: (tiled|register) \((hardware adapter|fallback adapter|forced by KESTREL_KERNELS)\)/,
      );
    } else {
      assert.deepEqual(failed.map((l) => l.split(":")[0]), [
        "FAIL webgpu adapter",
        "FAIL conv kernels",
        "FAIL self-test training step",
      ]);
      assert.equal(code, 1);
    }
    await Deno.remove(dataDir, { recursive: true });
  },
});

Deno.test({
  name: "kestrel doctor exits 1 when the data dir has less free disk than required",
  sanitizeResources: false,
  fn: async () => {
    const parent = await Deno.makeTempDir({ prefix: "kestrel-doctor-" });
    // A data dir not made yet is measured at its nearest existing parent.
    const { code, lines } = await doctor(
      "--data-dir",
      `${parent}/not/yet`,
      "--min-free-bytes",
      String(2 ** 52),
    );
    assert.equal(code, 1);
    const line = lines.find((l) => l.includes(" free disk: "))!;
    assert.ok(line.startsWith("FAIL free disk: ") && line.includes(` free in ${parent} (`), line);
    await Deno.remove(parent, { recursive: true });
  },
});

Deno.test({
  name: "the detect self-test fails when the detections do not match the drawn shapes",
  sanitizeResources: false,
  fn: async () => {
    const model = await Deno.readFile(DEFAULT_MODEL_PATH);
    const image = await testImage(readModelSpec(model, "default").imgsz);
    assert.equal((await detectCheck(nativeBackend, model, image)).ok, true);
    // The same pixels, labelled with shapes the picture does not hold: the check must notice.
    const { nc } = readModelSpec(model, "default");
    const wrong = { ...image, labels: image.labels.map(([cls, ...box]) => [(cls + 1) % nc, ...box]) };
    const result = await detectCheck(nativeBackend, model, wrong);
    assert.equal(result.ok, false, result.detail);
  },
});
