import assert from "node:assert/strict";
import sharp from "sharp";
import { loadDataset } from "../../../src/train/data/dataset.ts";
import { SCRATCH_LOW_AUGMENT } from "../../../src/train/data/hyp.ts";
import { ImageStore } from "../../../src/train/data/images.ts";
import { type Batch, BatchLoader } from "../../../src/train/data/loader.ts";
import { referenceData, referenceTest } from "../../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "golden/finetune-sgd/");
const GOLDEN = REFERENCE.path("golden/finetune-sgd/");
const SHAPES = new URL("../../fixtures/shapes/", import.meta.url).pathname;
/** xywhn2xy then xyxy2xywhn in float32 on an image that needs no resize: a few float32 ulps of 1. */
const LABEL_ROUNDTRIP_TOL = 1e-6;

async function collect(loader: BatchLoader, epoch = 0): Promise<Batch[]> {
  const out = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

referenceTest(
  REFERENCE,
  "BatchLoader without augment/shuffle yields golden finetune-sgd batches in sorted order, pixels /255",
  async () => {
    const scenario = JSON.parse(await Deno.readTextFile(`${GOLDEN}scenario.json`));
    const ds = await loadDataset(GOLDEN, { nc: 80 });
    const loader = new BatchLoader(ds.train, { imgsz: 320, batchSize: 2, shuffle: false, augment: false });
    const batches = await collect(loader);
    assert.equal(loader.batchesPerEpoch, 2);
    assert.deepEqual(batches.flatMap((b) => b.samples.map((s) => s.name)), scenario.images_in_order);
    const plane = 320 * 320;
    for (const batch of batches) {
      assert.equal(batch.images.length, batch.size * 3 * plane);
      for (let i = 0; i < batch.size; i++) {
        const { data } = await sharp(batch.samples[i].imagePath).removeAlpha().raw().toBuffer({
          resolveWithObject: true,
        });
        for (let p = 0; p < plane; p += 997) {
          for (let c = 0; c < 3; c++) {
            assert.equal(batch.images[i * 3 * plane + c * plane + p], Math.fround(data[p * 3 + c] / 255));
          }
        }
        const want = batch.samples[i].labels;
        const rows = [];
        for (let o = 0; o < batch.targets.length; o += 6) {
          if (batch.targets[o] === i) rows.push(batch.targets.subarray(o + 1, o + 6));
        }
        assert.equal(rows.length * 5, want.length);
        rows.forEach((row, r) =>
          row.forEach((v, k) =>
            assert.ok(Math.abs(v - want[r * 5 + k]) < LABEL_ROUNDTRIP_TOL, `${v} vs ${want[r * 5 + k]}`)
          )
        );
      }
    }
  },
);

Deno.test("BatchLoader letterboxes to imgsz with labels following the image, last batch short", async () => {
  const ds = await loadDataset(SHAPES, { nc: 3 });
  const loader = new BatchLoader(ds.train, { imgsz: 64, batchSize: 3, shuffle: false, augment: false });
  const batches = await collect(loader);
  assert.deepEqual(batches.map((b) => b.size), [3, 3, 2]);
  // 128 -> 64 is an exact 2x shrink with no padding: normalised labels are unchanged
  const b0 = batches[0];
  assert.deepEqual(b0.letterboxes[0], { size: 64, width: 64, height: 64, left: 0, top: 0 });
  const first = Array.from(b0.targets.subarray(1, 6));
  first.forEach((v, k) => assert.ok(Math.abs(v - ds.train[0].labels[k]) < LABEL_ROUNDTRIP_TOL));
});

Deno.test("BatchLoader shuffle is a seeded permutation per epoch", async () => {
  const ds = await loadDataset(SHAPES, { nc: 3 });
  const names = async (seed: number, epoch: number) =>
    (await collect(
      new BatchLoader(ds.train, { imgsz: 32, batchSize: 4, shuffle: true, augment: false, seed }),
      epoch,
    ))
      .flatMap((b) => b.samples.map((s) => s.name));
  const a = await names(1, 0);
  assert.deepEqual(await names(1, 0), a);
  assert.deepEqual([...a].sort(), ds.train.map((s) => s.name));
  assert.notDeepEqual(await names(1, 1), a);
  assert.notDeepEqual(await names(2, 0), a);
});

Deno.test("BatchLoader augment (mosaic, perspective, hsv, flips) is deterministic and keeps labels in range", async () => {
  const ds = await loadDataset(SHAPES, { nc: 3 });
  const opts = {
    imgsz: 128,
    batchSize: 4,
    shuffle: true,
    augment: true,
    seed: 3,
    hyp: { ...SCRATCH_LOW_AUGMENT, mixup: 0.5 },
  };
  const one = await collect(new BatchLoader(ds.train, opts));
  const two = await collect(new BatchLoader(ds.train, opts));
  assert.deepEqual(one.map((b) => b.targets), two.map((b) => b.targets));
  assert.deepEqual(one.map((b) => b.images), two.map((b) => b.images));
  const plain = await collect(new BatchLoader(ds.train, { ...opts, augment: false }));
  assert.notDeepEqual(one[0].images, plain[0].images);
  let boxes = 0;
  for (const b of one) {
    for (let o = 0; o < b.targets.length; o += 6, boxes++) {
      const [i, cls, cx, cy, w, h] = b.targets.subarray(o, o + 6);
      assert.ok(i >= 0 && i < b.size && [0, 1, 2].includes(cls));
      assert.ok(
        cx - w / 2 >= -LABEL_ROUNDTRIP_TOL && cx + w / 2 <= 1 + LABEL_ROUNDTRIP_TOL &&
          cy - h / 2 >= -LABEL_ROUNDTRIP_TOL && cy + h / 2 <= 1 + LABEL_ROUNDTRIP_TOL,
      );
      assert.ok(w * 128 > 2 && h * 128 > 2, "box_candidates drops boxes of 2 px or less");
    }
  }
  assert.ok(boxes > 0);
});

Deno.test("BatchLoader continues an augmented, shuffled epoch from any batch's cursor with the same batches", async () => {
  const ds = await loadDataset(SHAPES, { nc: 3 });
  const opts = { imgsz: 64, batchSize: 2, shuffle: true, augment: true, seed: 4, hyp: { mixup: 0.5 } };
  const epoch = 1;
  const whole = await collect(new BatchLoader(ds.train, opts), epoch);
  assert.ok(whole.length > 2);
  for (let k = 1; k <= whole.length; k++) {
    // A fresh loader, as after a restart.
    const rest = await Array.fromAsync(new BatchLoader(ds.train, opts).epoch(epoch, whole[k - 1].next));
    assert.equal(whole[k - 1].next.batch, k);
    assert.deepEqual(
      rest.map((b) => [b.samples.map((s) => s.name), b.images, b.targets, b.next]),
      whole.slice(k).map((b) => [b.samples.map((s) => s.name), b.images, b.targets, b.next]),
      `from batch ${k}`,
    );
  }
});

Deno.test("BatchLoader: pixels false gives the same batches without pixels; a shared store decodes once", async () => {
  const ds = await loadDataset(SHAPES, { nc: 3 });
  const opts = { imgsz: 64, batchSize: 3, shuffle: true, augment: false, seed: 4 };
  const store = new ImageStore(64, false);
  const full = await collect(new BatchLoader(ds.train, { ...opts, store }));
  const decoded = store.cachedBytes;
  assert.equal(decoded, ds.train.length * 3 * 64 * 64);
  const bare = await collect(new BatchLoader(ds.train, { ...opts, store, pixels: false }));
  assert.equal(store.cachedBytes, decoded, "the second loader decoded nothing new");
  assert.deepEqual(bare.map((b) => b.images.length), full.map(() => 0));
  assert.deepEqual(bare.map((b) => ({ ...b, images: null })), full.map((b) => ({ ...b, images: null })));
  assert.throws(
    () => new BatchLoader(ds.train, { ...opts, imgsz: 32, store }),
    /image store of imgsz 64, augment false cannot serve imgsz 32/,
  );
});

Deno.test("BatchLoader over no samples yields no batches (an empty val split)", async () => {
  const loader = new BatchLoader([], { imgsz: 64, batchSize: 4, shuffle: false, augment: false });
  assert.equal(loader.batchesPerEpoch, 0);
  assert.deepEqual(await collect(loader), []);
});
