/**
 * The GPU bench package's parts that need no network: which npm packages it keeps (npmClosure over deno.lock's
 * graph), the table scripts/gpu_bench.sh prints from its results folder, and the bench options' validation.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { npmClosure, type NpmLock } from "../../src/bundle/node_modules.ts";
import { table } from "../../scripts/gpu_bench_table.ts";
import { trainBenchOptions } from "../../src/bench/support/bench_env.ts";

Deno.test("npmClosure keeps the roots and what they need, resolving bare names, name@version and peer-suffixed keys", () => {
  const lock: NpmLock = {
    "app@1.0.0": { dependencies: ["lib", "long@5.3.2"], optionalDependencies: ["native-x64"] },
    "lib@2.0.0_peer@1.0.0": { dependencies: ["long@4.0.0", "peer"] },
    "peer@1.0.0": {},
    "long@4.0.0": {},
    "long@5.3.2": {},
    "native-x64@1.0.0": { os: ["linux"], cpu: ["x64"] },
    "unrelated@3.0.0": { dependencies: ["long@4.0.0"] },
  };
  assert.deepEqual(
    [...npmClosure(lock, ["app@1.0.0"])].sort(),
    ["app@1.0.0", "lib@2.0.0_peer@1.0.0", "long@4.0.0", "long@5.3.2", "native-x64@1.0.0", "peer@1.0.0"],
  );
  assert.deepEqual([...npmClosure(lock, ["lib@2.0.0"])].sort(), [
    "lib@2.0.0_peer@1.0.0",
    "long@4.0.0",
    "peer@1.0.0",
  ]);
  // Two entries of one name and no version: which one is meant cannot be told.
  assert.throws(() => npmClosure(lock, ["long"]), /'long' matches 2 npm entries/);
});

/** Writes a results folder as scripts/gpu_bench.sh leaves it. */
async function results(files: Record<string, string>): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-gpubench-table-" });
  for (const [name, text] of Object.entries(files)) await Deno.writeTextFile(join(dir, name), text);
  return dir;
}

const HARDWARE_DOCTOR = "ok   webgpu adapter: nvidia hopper NVIDIA H100; hardware; features: shader-f16\n";
const kestrelLine = (imgsz: number, batch: number, imagesPerS: number, amp = false) =>
  JSON.stringify({
    name: "finetune_step",
    adapter: "NVIDIA H100",
    fallback: false,
    imgsz,
    batch,
    amp,
    images_per_s: imagesPerS,
  });
const torchLine = (c: string, imagesPerS: number) =>
  JSON.stringify({
    case: c,
    torch: "2.11.0",
    device: "NVIDIA H100",
    stand_ins: ["IPython"],
    model: "yolov5n.pt",
    images_per_s: imagesPerS,
  });

/** The table's data rows as cells (header and separator dropped). */
function rows(markdown: string): string[][] {
  return markdown.split("\n").filter((l) => l.startsWith("| ")).slice(2).map((l) =>
    l.slice(2, -2).split(" | ")
  );
}

Deno.test("the GPU bench table: a row per case with Kestrel / PyTorch as the ratio, and why a cell has no figure", async () => {
  const dir = await results({
    "doctor.txt": HARDWARE_DOCTOR,
    "kestrel-320x8-f32.json": kestrelLine(320, 8, 300),
    "kestrel-320x8-f32.status": "exit 0",
    // The bench ran without mixed precision although amp was asked for: no amp figure.
    "kestrel-320x8-amp.json": kestrelLine(320, 8, 310),
    "kestrel-320x8-amp.status": "exit 0",
    "kestrel-640x64-f32.json": "",
    "kestrel-640x64-f32.status": "timeout 45",
    "kestrel-640x64-amp.json": JSON.stringify({
      name: "finetune_step",
      error: "Buffer size exceeds maxBufferSize",
    }),
    "kestrel-640x64-amp.status": "exit 1",
    "torch.jsonl":
      [torchLine("320x8:f32", 1200), torchLine("320x8:amp", 1500), torchLine("640x64:f32", 400)].join(
        "\n",
      ) + "\nTraceback (most recent call last):\n",
    "torch.status": "timeout 150",
  });
  const cases = ["320x8:f32", "320x8:amp", "640x64:f32", "640x64:amp"];
  const got = rows(table(dir, cases, "2026-12-05"));
  await Deno.remove(dir, { recursive: true });
  assert.deepEqual(got.map((r) => r.slice(1)), [
    ["yolov5n 320 b8 f32", "300.00", "1200.00 (cuda)", (300 / 1200).toFixed(2), "2026-12-05"],
    ["yolov5n 320 b8 amp", "amp: not available (the bench ran f32)", "1500.00 (cuda)", "-", "2026-12-05"],
    ["yolov5n 640 b64 f32", "timeout (45 s)", "400.00 (cuda)", "-", "2026-12-05"],
    ["yolov5n 640 b64 amp", "error: Buffer size exceeds maxBufferSize", "timeout (150 s)", "-", "2026-12-05"],
  ]);
  assert.ok(got.every((r) => r[0] === "NVIDIA H100"), JSON.stringify(got));
});

Deno.test("the GPU bench table flags a fallback adapter and a run without PyTorch", async () => {
  const dir = await results({
    "doctor.txt": "ok   webgpu adapter: 65541 0 llvmpipe; fallback (software); features: shader-f16\n",
    "kestrel-64x2-f32.json": JSON.stringify({
      adapter: "llvmpipe",
      fallback: true,
      amp: false,
      images_per_s: 4.5,
    }),
    "kestrel-64x2-f32.status": "exit 0",
    "kestrel-64x2-amp.status": "skipped: time budget",
    "torch.status": "skipped: no python3 with torch, cv2 and yaml",
  });
  const markdown = table(dir, ["64x2:amp", "64x2:f32"], "2026-12-05");
  await Deno.remove(dir, { recursive: true });
  assert.deepEqual(rows(markdown), [[
    // No Kestrel line for this case: the adapter comes from the doctor's report.
    "65541 0 llvmpipe (fallback)",
    "yolov5n 64 b2 amp",
    "skipped: time budget",
    "skipped: no python3 with torch, cv2 and yaml",
    "-",
    "2026-12-05",
  ], [
    "llvmpipe (fallback)",
    "yolov5n 64 b2 f32",
    "4.50",
    "skipped: no python3 with torch, cv2 and yaml",
    "-",
    "2026-12-05",
  ]]);
  assert.match(markdown, /FALLBACK \(software\) adapter: not GPU figures/);
});

Deno.test("bench options: defaults unset, the variables' values, and a clear error for a bad one", () => {
  const names = ["BATCH", "IMGSZ", "WARMUP", "STEPS", "SECONDS", "AMP", "THROUGHPUT_ONLY"].map((n) =>
    `KESTREL_BENCH_${n}`
  );
  const saved = names.map((n) => Deno.env.get(n));
  try {
    names.forEach((n) => Deno.env.delete(n));
    assert.deepEqual(trainBenchOptions({ batch: 8, imgsz: 320, steps: 2 }), {
      batch: 8,
      imgsz: 320,
      warmup: 1,
      steps: 2,
      seconds: Number.POSITIVE_INFINITY,
      amp: false,
      throughputOnly: false,
    });
    Deno.env.set("KESTREL_BENCH_BATCH", "64");
    Deno.env.set("KESTREL_BENCH_IMGSZ", "640");
    Deno.env.set("KESTREL_BENCH_AMP", "true");
    const set = trainBenchOptions({ batch: 8, imgsz: 320, steps: 2 });
    assert.deepEqual([set.batch, set.imgsz, set.amp], [64, 640, true]);
    Deno.env.set("KESTREL_BENCH_IMGSZ", "100");
    assert.throws(
      () => trainBenchOptions({ batch: 8, imgsz: 320, steps: 2 }),
      /IMGSZ=100: must be a multiple of 32/,
    );
    Deno.env.set("KESTREL_BENCH_IMGSZ", "320");
    Deno.env.set("KESTREL_BENCH_AMP", "yes");
    assert.throws(
      () => trainBenchOptions({ batch: 8, imgsz: 320, steps: 2 }),
      /AMP=yes: expected true or false/,
    );
  } finally {
    names.forEach((n, i) => saved[i] === undefined ? Deno.env.delete(n) : Deno.env.set(n, saved[i]!));
  }
});
