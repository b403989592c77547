import assert from "node:assert/strict";
import { applyOverrides, FINETUNE_LIMITS, parseFinetuneConfig } from "../../src/config/finetune.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "golden/finetune-sgd/scenario.json");
const SCENARIO = REFERENCE.path("golden/finetune-sgd/scenario.json");
const scenario = REFERENCE.missing ? {} : JSON.parse(await Deno.readTextFile(SCENARIO));

referenceTest(REFERENCE, "parseFinetuneConfig() reads the golden scenario.json unchanged", () => {
  const config = parseFinetuneConfig(scenario, SCENARIO);
  for (const key of Object.keys(scenario).filter((k) => k !== "hyp")) {
    assert.deepEqual(config[key as keyof typeof config], scenario[key], key);
  }
  for (const [key, value] of Object.entries(scenario.hyp)) {
    assert.equal(config.hyp[key as keyof typeof config.hyp], value, key);
  }
});

referenceTest(
  REFERENCE,
  "parseFinetuneConfig() defaults to the golden scenario's hyp (hyp.scratch-low)",
  () => {
    const config = parseFinetuneConfig({});
    // The scenario's hyp block is hyp.scratch-low.yaml before scaling (the reference data's README).
    for (const [key, value] of Object.entries(scenario.hyp)) {
      assert.equal(config.hyp[key as keyof typeof config.hyp], value, key);
    }
  },
);

Deno.test("parseFinetuneConfig() defaults: hyp.scratch-low (docs/training.md §8.2), train.py's CLI options", () => {
  const config = parseFinetuneConfig({});
  // The augmentation rows of docs/training.md §8.2's table.
  assert.deepEqual(
    [
      config.hyp.hsv_h,
      config.hyp.hsv_s,
      config.hyp.hsv_v,
      config.hyp.degrees,
      config.hyp.translate,
      config.hyp.scale,
    ],
    [0.015, 0.7, 0.4, 0.0, 0.1, 0.5],
  );
  assert.deepEqual(
    [config.hyp.shear, config.hyp.perspective, config.hyp.flipud, config.hyp.fliplr, config.hyp.mosaic],
    [0.0, 0.0, 0.0, 0.5, 1.0],
  );
  assert.deepEqual([config.hyp.mixup, config.hyp.copy_paste], [0.0, 0.0]);
  // docs/training.md §8.2 CLI defaults, §3.1 nbs, §4 clip norm, §5 EMA.
  assert.deepEqual(
    [config.epochs, config.batch_size, config.imgsz, config.optimizer, config.cos_lr, config.label_smoothing],
    [100, 16, 640, "SGD", false, 0],
  );
  assert.deepEqual([config.nbs, config.max_grad_norm, config.ema, config.freeze], [64, 10, {
    decay: 0.9999,
    tau: 2000,
  }, 0]);
  assert.equal(config.activate, "if_better");
});

Deno.test("parseFinetuneConfig() lists every offending key and rejects unknown ones", () => {
  assert.throws(
    () =>
      parseFinetuneConfig(
        { epoch: 3, imgsz: 100, optimizer: "sgd", hyp: { lr0: -1 }, ema: { decay: 1 } },
        "a.json",
      ),
    (err: Error) =>
      err instanceof TypeError && /'a\.json'/.test(err.message) &&
      ["imgsz", "optimizer", "hyp.lr0", "ema.decay", '"epoch"'].every((k) => err.message.includes(k)),
  );
  assert.deepEqual(parseFinetuneConfig({ freeze: [0, 1, 2] }).freeze, [0, 1, 2]);
  assert.throws(() => parseFinetuneConfig({ activate: "sometimes" }), /activate/);
});

Deno.test("applyOverrides() sets nested keys from flag strings, typed by JSON", () => {
  const input = { epochs: 5, optimizer: "SGD", hyp: { lr0: 0.01 }, ema: { decay: 0.9999, tau: 2000 } };
  const raw = applyOverrides(input, {
    epochs: "3",
    "hyp.lr0": "0.02",
    "ema.tau": "10",
    optimizer: "AdamW",
  });
  const config = parseFinetuneConfig(raw);
  assert.deepEqual([config.epochs, config.hyp.lr0, config.ema.tau, config.optimizer], [3, 0.02, 10, "AdamW"]);
  assert.deepEqual(
    [input.epochs, input.hyp.lr0, input.ema.tau],
    [5, 0.01, 2000],
    "the input object is left alone",
  );
  assert.throws(() => parseFinetuneConfig(applyOverrides({}, { epochs: "three" })), /epochs/);
  assert.throws(() => applyOverrides({ imgsz: 320 }, { "imgsz.x": "1" }), /imgsz/);
});

Deno.test("parseFinetuneConfig() accepts the bounds of FINETUNE_LIMITS and refuses one step past each", () => {
  const at = parseFinetuneConfig({
    imgsz: FINETUNE_LIMITS.imgsz,
    batch_size: FINETUNE_LIMITS.batch_size,
    epochs: FINETUNE_LIMITS.epochs,
    nbs: FINETUNE_LIMITS.nbs,
    seed: FINETUNE_LIMITS.seed,
    freeze: [FINETUNE_LIMITS.layer],
  });
  assert.deepEqual([at.imgsz, at.batch_size, at.epochs], [1280, 256, 3000]);
  const past: [string, unknown][] = [
    ["imgsz", FINETUNE_LIMITS.imgsz + 32],
    ["batch_size", FINETUNE_LIMITS.batch_size + 1],
    ["epochs", FINETUNE_LIMITS.epochs + 1],
    ["nbs", FINETUNE_LIMITS.nbs + 1],
    ["seed", FINETUNE_LIMITS.seed + 1],
  ];
  for (const [key, value] of past) {
    assert.throws(() => parseFinetuneConfig({ [key]: value }), new RegExp(`${key}: ${key} is at most`), key);
  }
  assert.throws(() => parseFinetuneConfig({ freeze: FINETUNE_LIMITS.layer + 1 }), /layer is at most 1000/);
});
