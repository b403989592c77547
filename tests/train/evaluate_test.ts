import assert from "node:assert/strict";
import sharp from "sharp";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { BatchLoader } from "../../src/train/data/loader.ts";
import { evaluate, scaleBoxes } from "../../src/train/evaluate.ts";
import { decodeHeads, type HeadLayer, type HeadSpec } from "../../src/train/evaluate_decode.ts";
import { nonMaxSuppression, VAL_NMS } from "../../src/train/evaluate_nms.ts";
import type { Detection } from "../../src/train/metrics.ts";
import { ortHeads } from "./_ort_heads.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "golden/val-yolov5n-320/", "models/yolov5n.onnx");
const GOLDEN = REFERENCE.url("golden/val-yolov5n-320/");
const MODEL = REFERENCE.url("models/yolov5n.onnx");
const YOLOV5N: HeadSpec = {
  nc: 80,
  strides: [8, 16, 32],
  anchors: [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]],
};
/** predictions.json rounds boxes to 1e-4 px; onnxruntime vs PyTorch conv noise adds ~5e-4 px at 320 (measured). */
const BOX_TOL_PX = 2e-3;
/** confidences are float32 probabilities; ORT vs PyTorch differ by ~1e-6 (measured). */
const CONF_TOL = 1e-5;
/** decode arithmetic is float32: σ(ln 3) = 0.75 and its products carry float32 rounding of values up to 45. */
const EXACT = 1e-6;
/** The reference data's README: the whole evaluation (forward at 320, decode, NMS, metrics) agrees with metrics.json to ~1e-3. */
const PIPELINE_TOL = 1e-3;

/** A layer of raw logits (1, 1, ny, nx, no) set to `fill`, with `set` overriding [y, x, k] entries. */
function layer(
  ny: number,
  nx: number,
  no: number,
  fill: number,
  set: [number, number, number, number][] = [],
) {
  const data = new Float32Array(ny * nx * no).fill(fill);
  for (const [y, x, k, v] of set) data[(y * nx + x) * no + k] = v;
  return { data, ny, nx };
}

Deno.test("decodeHeads: xy = (2σ + cell − 0.5)·stride, wh = (2σ)²·anchor, order layer/anchor/row/col", () => {
  const spec: HeadSpec = { nc: 1, strides: [8, 16], anchors: [[20, 30], [40, 50]] };
  const logit075 = Math.log(3); // σ = 0.75
  const [rows] = decodeHeads(
    [layer(2, 2, 6, 0, [[1, 0, 0, logit075], [1, 0, 2, logit075]]), layer(1, 1, 6, 0)],
    spec,
    1,
  );
  assert.equal(rows.length, (4 + 1) * 6);
  const row = (i: number) => Array.from(rows.subarray(i * 6, i * 6 + 6));
  // cell (y=0, x=1): σ = 0.5 everywhere -> centre (1 + 1 − 0.5)·8, wh = anchor
  assert.deepEqual(row(1), [12, 4, 20, 30, 0.5, 0.5]);
  // cell (y=1, x=0): tx σ 0.75 -> (1.5 − 0.5)·8 = 8; tw -> 1.5²·20 = 45
  const r2 = row(2);
  for (const [got, want] of r2.map((v, i) => [v, [8, 12, 45, 30, 0.5, 0.5][i]])) {
    assert.ok(Math.abs(got - want) < EXACT, `${r2}`);
  }
  // second layer, single cell: centre (1 − 0.5)·16 = 8, wh = its own anchor
  assert.deepEqual(row(4), [8, 8, 40, 50, 0.5, 0.5]);
});

/** rows (cx, cy, w, h, obj, cls0, cls1) for nc = 2 */
const rows = (...r: number[][]) => Float32Array.from(r.flat());

Deno.test("nonMaxSuppression: multi-label candidates, strict conf > and class-aware suppression", () => {
  const dets = nonMaxSuppression(
    rows(
      [50, 50, 20, 20, 0.9, 0.8, 0.5], // -> cls0 0.72, cls1 0.45
      [51, 50, 20, 20, 0.8, 0.1, 0.9], // -> cls0 0.08, cls1 0.72; overlaps row 0 heavily
      [200, 200, 10, 10, 0.001, 1, 1], // obj not > 0.001: dropped before anything else
    ),
    2,
  );
  const tie = Math.fround(Math.fround(0.8) * Math.fround(0.9));
  // candidates: r0c0 0.72, r1c1 0.72 (a tie: the stable sort keeps row order), r0c1 0.45, r1c0 0.08.
  // r0c0 suppresses r1c0 and r1c1 suppresses r0c1 (same class, IoU = 380/420); across classes nothing is suppressed
  assert.deepEqual(dets.map((d) => [d[4], d[5]]), [[tie, 0], [tie, 1]]);
  assert.deepEqual(dets.find((d) => d[5] === 0)!.slice(0, 4), [40, 40, 60, 60]);
});

Deno.test("nonMaxSuppression: IoU exactly at the threshold survives (strict >), just above is suppressed", () => {
  const half = { ...VAL_NMS, iouThres: 0.5 };
  // [0,0,10,10] and [0,0,10,5]: IoU = 50 / 100 = 0.5, exact in float32
  assert.equal(
    nonMaxSuppression(rows([5, 5, 10, 10, 0.9, 1, 0], [5, 2.5, 10, 5, 0.8, 1, 0]), 2, half).length,
    2,
  );
  assert.equal(
    nonMaxSuppression(rows([5, 5, 10, 10, 0.9, 1, 0], [5, 2.55, 10, 5.1, 0.8, 1, 0]), 2, half).length,
    1,
  );
  // IoU 75/125 is float32(0.6) = 0.60000002 > 0.6 (double, as torchvision compares): suppressed at val's 0.6
  assert.equal(nonMaxSuppression(rows([5, 5, 10, 10, 0.9, 1, 0], [5, 7.5, 10, 10, 0.8, 1, 0]), 2).length, 1);
});

Deno.test("nonMaxSuppression: max_det truncates in confidence order; single-label keeps the best class", () => {
  const many = rows(...Array.from({ length: 5 }, (_, i) => [i * 100, 0, 10, 10, 0.5 + i / 10, 1, 0]));
  const kept = nonMaxSuppression(many, 2, { ...VAL_NMS, maxDet: 3 });
  assert.deepEqual(kept.map((d) => d[0]), [395, 295, 195]);
  const single = nonMaxSuppression(rows([0, 0, 10, 10, 0.5, 0.3, 0.6]), 2, { ...VAL_NMS, multiLabel: false });
  assert.deepEqual(single.map((d) => d[5]), [1]);
});

referenceTest(
  REFERENCE,
  "decode + val NMS of yolov5n's raw heads at 320 (onnxruntime) reproduce golden predictions.json",
  async () => {
    const predictions: Record<string, Detection[]> = JSON.parse(
      await Deno.readTextFile(new URL("predictions.json", GOLDEN)),
    );
    const heads = await ortHeads(MODEL.pathname, 320);
    for (const name of Object.keys(predictions).sort()) {
      const { data, info } = await sharp(new URL(`images/${name}`, GOLDEN).pathname).removeAlpha().raw()
        .toBuffer({ resolveWithObject: true });
      const n = info.width * info.height;
      const image = new Float32Array(3 * n);
      for (let p = 0; p < n; p++) for (let c = 0; c < 3; c++) image[c * n + p] = data[p * 3 + c] / 255;
      const [decoded] = decodeHeads(await heads.run(image), YOLOV5N, 1);
      const dets = nonMaxSuppression(decoded, YOLOV5N.nc);
      const want = predictions[name];
      assert.equal(dets.length, want.length, name);
      dets.forEach((d, i) => {
        assert.equal(d[5], want[i][5], `${name} det ${i} class`);
        assert.ok(Math.abs(d[4] - want[i][4]) < CONF_TOL, `${name} det ${i} conf ${d[4]} vs ${want[i][4]}`);
        for (let k = 0; k < 4; k++) {
          assert.ok(Math.abs(d[k] - want[i][k]) < BOX_TOL_PX, `${name} det ${i} box ${d} vs ${want[i]}`);
        }
      });
    }
  },
);

referenceTest(
  REFERENCE,
  "evaluate: golden val-yolov5n-320 dataset through loader, onnxruntime heads, NMS and metrics",
  async () => {
    const expected = JSON.parse(await Deno.readTextFile(new URL("metrics.json", GOLDEN)));
    const ds = await loadDataset(GOLDEN.pathname, { nc: 80 });
    const heads = await ortHeads(MODEL.pathname, 320);
    const plane = 3 * 320 * 320;
    const forward = async (images: Float32Array, size: number) => {
      const perImage: HeadLayer[][] = [];
      for (let i = 0; i < size; i++) perImage.push(await heads.run(images.slice(i * plane, (i + 1) * plane)));
      const layers: HeadLayer[] = perImage[0].map((l, li) => {
        const data = new Float32Array(l.data.length * size);
        perImage.forEach((p, i) => data.set(p[li].data, i * l.data.length));
        return { data, ny: l.ny, nx: l.nx };
      });
      return { heads: layers };
    };
    const loader = new BatchLoader(ds.train, { imgsz: 320, batchSize: 4, shuffle: false, augment: false });
    const m = await evaluate(forward, loader.epoch(), YOLOV5N);
    assert.deepEqual([m.images, m.labels], [expected.images, expected.labels]);
    // The golden file names mAP@0.5:0.95 "map", as val.py does.
    const golden = { P: "P", R: "R", map50: "map50", map50_95: "map" } as const;
    for (const [key, want] of Object.entries(golden) as [keyof typeof golden, string][]) {
      assert.ok(Math.abs(m[key] - expected[want]) < PIPELINE_TOL, `${key}: ${m[key]} vs ${expected[want]}`);
    }
    for (const [c, want] of Object.entries(expected.per_class) as [string, { ap50: number; ap: number }][]) {
      assert.ok(Math.abs(m.perClass[Number(c)].ap - want.ap) < PIPELINE_TOL, `class ${c}`);
    }
  },
);

Deno.test("scaleBoxes undoes the letterbox (float pad, gain) and clips to the native image", () => {
  // 200x100 image letterboxed to 64: gain 0.32, resized 64x32, pad (0, 16)
  const toNative = scaleBoxes(32 / 100, 0, 16, 200, 100);
  assert.deepEqual(toNative([16, 24, 32, 40]), [50, 25, 100, 75]);
  assert.deepEqual(toNative([-5, 10, 70, 60]), [0, 0, 200, 100]);
});

Deno.test("evaluate maps decoded predictions through the letterbox back to native pixels", async () => {
  // one 200x100 image with one box; at imgsz 64 it is shrunk to 64x32 and padded 16 px top and bottom
  const dir = await Deno.makeTempDir();
  await Deno.mkdir(`${dir}/images`);
  await Deno.mkdir(`${dir}/labels`);
  const raw = { width: 200, height: 100, channels: 3 as const };
  await Deno.writeFile(
    `${dir}/images/a.png`,
    await sharp(new Uint8Array(200 * 100 * 3), { raw }).png().toBuffer(),
  );
  await Deno.writeTextFile(`${dir}/labels/a.txt`, "1 0.25 0.5 0.2 0.4\n"); // native box [30, 30, 70, 70]
  const ds = await loadDataset(dir, { nc: 2 });
  const spec: HeadSpec = { nc: 2, strides: [8], anchors: [[10, 10]] };
  // the same box in letterbox pixels: centre (50·0.32, 50·0.32 + 16), size 40·0.32
  const rows = Float32Array.from([16, 32, 12.8, 12.8, 0.9, 0.1, 0.95, 40, 40, 8, 8, 0.5, 0.9, 0.2]);
  const loader = new BatchLoader(ds.train, { imgsz: 64, batchSize: 1, shuffle: false, augment: false });
  const m = await evaluate(() => Promise.resolve({ decoded: [rows] }), loader.epoch(), spec);
  await Deno.remove(dir, { recursive: true });
  // the class-1 detection matches at every IoU threshold (ceiling 0.995); the class-0 ones have no labels
  assert.deepEqual(Object.keys(m.perClass), ["1"]);
  assert.ok(Math.abs(m.map50_95 - 0.995) < EXACT, String(m.map50_95));
});
