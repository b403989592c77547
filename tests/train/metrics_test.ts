import assert from "node:assert/strict";
import {
  apPerClass,
  computeAp,
  type Detection,
  imageStats,
  IOU_THRESHOLDS,
  type LabelBox,
  processBatch,
} from "../../src/train/metrics.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "golden/val-yolov5n-320/");
const GOLDEN = REFERENCE.url("golden/val-yolov5n-320/");
/** metrics.json is plain float64 arithmetic on the same inputs (the reference data's README says ~1e-9). */
const GOLDEN_TOL = 1e-9;
/** AP arithmetic on exact small fractions: only float64 rounding separates us from the closed forms. */
const EXACT_TOL = 1e-12;
const IMGSZ = 320;
/** The tie example's IoUs (0.6, 0.9) are float32 values a hair off their decimal; thresholds are compared around them. */
const IOU_EDGE = 1e-6;

/** YOLO label lines `cls cx cy w h` (normalised, float32 as the dataloader holds them) -> xyxy pixels in float32. */
function labelBoxes(text: string): LabelBox[] {
  const f = Math.fround;
  return text.trim().split("\n").filter(Boolean).map((line) => {
    const [c, ...v] = line.trim().split(/\s+/).map(Number);
    const [x, y, w, h] = v.map((n) => f(f(n) * IMGSZ));
    return [c, f(x - f(w / 2)), f(y - f(h / 2)), f(x + f(w / 2)), f(y + f(h / 2))] as const;
  });
}

referenceTest(REFERENCE, "apPerClass reproduces golden val-yolov5n-320 metrics.json", async () => {
  const predictions: Record<string, Detection[]> = JSON.parse(
    await Deno.readTextFile(new URL("predictions.json", GOLDEN)),
  );
  const expected = JSON.parse(await Deno.readTextFile(new URL("metrics.json", GOLDEN)));
  const stats = [];
  for (const name of Object.keys(predictions).sort()) {
    const labels = labelBoxes(
      await Deno.readTextFile(new URL(`labels/${name.replace(/\.png$/, ".txt")}`, GOLDEN)),
    );
    stats.push(imageStats(predictions[name], labels));
  }
  const m = apPerClass(stats);
  assert.equal(m.images, expected.images);
  assert.equal(m.labels, expected.labels);
  // The golden file names mAP@0.5:0.95 "map", as val.py does.
  const golden = { P: "P", R: "R", map50: "map50", map50_95: "map" } as const;
  for (const [key, want] of Object.entries(golden) as [keyof typeof golden, string][]) {
    assert.ok(Math.abs(m[key] - expected[want]) < GOLDEN_TOL, `${key}: ${m[key]} vs ${expected[want]}`);
  }
  assert.deepEqual(Object.keys(m.perClass).sort(), Object.keys(expected.per_class).sort());
  for (const [c, want] of Object.entries(expected.per_class) as [string, { ap50: number; ap: number }][]) {
    const got = m.perClass[Number(c)];
    assert.ok(Math.abs(got.ap50 - want.ap50) < GOLDEN_TOL, `class ${c} ap50 ${got.ap50} vs ${want.ap50}`);
    assert.ok(Math.abs(got.ap - want.ap) < GOLDEN_TOL, `class ${c} ap ${got.ap} vs ${want.ap}`);
  }
});

Deno.test("perfect detector scores the 0.995 ceiling at every IoU threshold", () => {
  const labels: LabelBox[] = [[0, 10, 10, 50, 50], [1, 60, 60, 100, 120]];
  const dets: Detection[] = [[10, 10, 50, 50, 0.9, 0], [60, 60, 100, 120, 0.8, 1]];
  const m = apPerClass([imageStats(dets, labels)]);
  // docs/training.md §7.7: mrec ends with the sentinel 1.0 and mpre with 0.0, so the last 1% of recall is
  // a ramp to 0
  assert.ok(Math.abs(m.map50 - 0.995) < EXACT_TOL, String(m.map50));
  assert.ok(Math.abs(m.map50_95 - 0.995) < EXACT_TOL, String(m.map50_95));
  assert.ok(Math.abs(m.P - 1) < EXACT_TOL && Math.abs(m.R - 1) < EXACT_TOL, `${m.P} ${m.R}`);
});

Deno.test("one TP at recall 0.5 with precision 1 scores 0.75; recall 0.9 scores 0.95", () => {
  assert.ok(Math.abs(computeAp([0.5], [1]) - 0.75) < EXACT_TOL);
  assert.ok(Math.abs(computeAp([0.9], [1]) - 0.95) < EXACT_TOL);
  const labels: LabelBox[] = [[3, 0, 0, 10, 10], [3, 20, 20, 30, 30]];
  const m = apPerClass([imageStats([[0, 0, 10, 10, 0.7, 3]], labels)]);
  assert.ok(Math.abs(m.perClass[3].ap50 - 0.75) < EXACT_TOL, String(m.perClass[3].ap50));
});

Deno.test("processBatch gives a label to the lowest det index, not the highest IoU (docs/training.md §7.6)", () => {
  // label [0,0,100,100]; det0 IoU 0.6 (conf 0.9), det1 IoU 0.9 (conf 0.8)
  const labels: LabelBox[] = [[0, 0, 0, 100, 100]];
  const dets: Detection[] = [[0, 0, 100, 60, 0.9, 0], [0, 0, 100, 90, 0.8, 0]];
  const correct = processBatch(dets, labels);
  IOU_THRESHOLDS.forEach((t, i) => {
    assert.equal(correct[0][i], t <= 0.6 + IOU_EDGE, `det0 at ${t}`);
    assert.equal(correct[1][i], t > 0.6 + IOU_EDGE && t <= 0.9 + IOU_EDGE, `det1 at ${t}`);
  });
});

Deno.test("no correct prediction anywhere gives all-zero metrics", () => {
  const m = apPerClass([imageStats([[0, 0, 5, 5, 0.9, 1]], [[0, 0, 0, 5, 5]])]);
  assert.deepEqual([m.P, m.R, m.map50, m.map50_95], [0, 0, 0, 0]);
  assert.deepEqual(m.perClass, { 0: { ap50: 0, ap: 0 } });
});
