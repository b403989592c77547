// `deno task finetune`: flags override config keys, the three outputs are written, and bad input exits non-zero
// with the reason. A tiny model (1x1 head convs) on 6 synthesised images keeps each run well under a second.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { parseFlags, run } from "../../src/cli/finetune.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { interp, lrLambda, warmupIterations } from "../../src/optim/schedule.ts";
import type { TraceLine } from "../../src/optim/trace.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { synthDir, TINY_IMGSZ } from "../train/_finetune.ts";

const data = await synthDir(6, TINY_IMGSZ);
const work = await Deno.makeTempDir({ prefix: "kestrel-cli-" });
const modelPath = `${work}/tiny.onnx`;
await Deno.writeFile(modelPath, tinyYolo({ nc: 3, imgsz: TINY_IMGSZ }));
const configPath = `${work}/config.json`;
await Deno.writeTextFile(
  configPath,
  JSON.stringify({ imgsz: TINY_IMGSZ, batch_size: 2, epochs: 5, augment: false, val_fraction: 0 }),
);
globalThis.addEventListener("unload", () => {
  for (const d of [data, work]) Deno.removeSync(d, { recursive: true });
});

Deno.test("parseFlags reads --key value and --key=value, and rejects stray arguments", () => {
  assert.deepEqual(parseFlags(["--epochs", "3", "--hyp.lr0=0.02"]), { epochs: "3", "hyp.lr0": "0.02" });
  assert.throws(() => parseFlags(["model.onnx"]), /unexpected argument 'model.onnx'/);
  assert.throws(() => parseFlags(["--out"]), /'--out' needs a value/);
});

gpuTest(
  "finetune writes last.onnx, ema.onnx and trace.jsonl; --epochs and --hyp.lr0 override the config",
  async () => {
    const out = `${work}/run`;
    const args = ["--config", configPath, "--model", modelPath, "--data", data, "--out", out];
    assert.equal(await run([...args, "--epochs", "2", "--hyp.lr0", "0.02"]), 0);
    const trace: TraceLine[] = (await Deno.readTextFile(`${out}/trace.jsonl`)).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
    // 6 images in batches of 2: nb = 3, and --epochs 2 replaces the config's 5
    assert.equal(trace.length, 6);
    // warmup lr of the weights group: interp(ni, [0, nw], [0, lr0 * lf(epoch)]) with the overridden lr0
    const lf = lrLambda(false, 2, 0.01), nw = warmupIterations(3, 3);
    for (const line of trace) assert.equal(line.lr[1], interp(line.ni, [0, nw], [0, 0.02 * lf(line.epoch)]));

    const base = OnnxModel.parse(await Deno.readFile(modelPath));
    const last = OnnxModel.parse(await Deno.readFile(`${out}/last.onnx`));
    const ema = OnnxModel.parse(await Deno.readFile(`${out}/ema.onnx`));
    const name = "model.24.m.0.weight";
    const [w0, wl, we] = [base, last, ema].map((m) => m.getInitializer(name).data);
    assert.notDeepEqual(wl, w0, "training changed the weights");
    assert.notDeepEqual(we, wl, "the EMA differs from the final weights");
    assert.deepEqual(last.graph.node.length, base.graph.node.length);
  },
);

gpuTest("finetune's summary line says where the command's wall time went, stage by stage", async () => {
  const lines: string[] = [];
  const log = console.log;
  console.log = (m: string) => lines.push(m);
  try {
    const args = ["--config", configPath, "--model", modelPath, "--data", data, "--out", `${work}/stages`];
    assert.equal(await run([...args, "--epochs", "1", "--val_fraction", "0.34"]), 0);
  } finally {
    console.log = log;
  }
  const summary = JSON.parse(lines.at(-1)!);
  const stages: Record<string, number> = summary.stages;
  assert.deepEqual(Object.keys(stages), [
    "startup",
    "device",
    "model",
    "dataset",
    "program",
    "cache",
    "eval_base",
    "train",
    "train_host",
    "write",
    "eval_result",
  ]);
  for (const [name, seconds] of Object.entries(stages)) assert.ok(seconds >= 0, `${name}: ${seconds}`);
  // 2 of the 6 images are held out, so both evaluations ran; freeze 0 caches nothing
  assert.ok(stages.eval_base > 0 && stages.eval_result > 0 && stages.train > 0);
  assert.equal(stages.cache, 0);
  assert.ok(stages.train_host <= stages.train);
  const { train_host: _partOfTrain, ...disjoint } = stages;
  // Stages are rounded to 0.01 s each: their sum can pass the total by at most that per stage.
  const rounding = 0.005 * Object.keys(disjoint).length;
  const sum = Object.values(disjoint).reduce((a, b) => a + b, 0);
  assert.ok(sum <= summary.total_seconds + rounding, `stages sum ${sum} > total ${summary.total_seconds}`);
});

Deno.test("finetune exits 2 on a missing --out, an unknown config key and an --amp that is no boolean", async () => {
  assert.equal(await run(["--config", configPath]), 2);
  assert.equal(await run(["--config", configPath, "--out", `${work}/x`, "--epoch", "3"]), 2);
  assert.equal(await run(["--config", configPath, "--out", `${work}/x`, "--amp", "maybe"]), 2);
});

gpuTest("finetune exits 1 on a bad dataset, naming the offending file and line", async () => {
  const bad = await Deno.makeTempDir({ dir: work });
  await Deno.mkdir(`${bad}/images`);
  await Deno.mkdir(`${bad}/labels`);
  await Deno.copyFile(
    `${data}/images/${[...Deno.readDirSync(`${data}/images`)][0].name}`,
    `${bad}/images/a.png`,
  );
  await Deno.writeTextFile(`${bad}/labels/a.txt`, "7 0.5 0.5 0.2 0.2\n");
  const errors: string[] = [];
  const error = console.error;
  console.error = (m: string) => errors.push(m);
  try {
    assert.equal(
      await run(["--config", configPath, "--model", modelPath, "--data", bad, "--out", `${work}/y`]),
      1,
    );
  } finally {
    console.error = error;
  }
  assert.match(errors.join("\n"), /labels\/a\.txt:1/);
});
