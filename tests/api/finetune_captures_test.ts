// `POST /v1/models/{name}/finetune` with `"source": "captures"`: the job's dataset is the model's labelled
// captures in YOLO split layout (train captures to train on, val captures to evaluate on); nothing labelled,
// or a server without capture are clear errors and queue nothing; an upload sent with `source` joins the captures.
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import sharp from "sharp";
import { createApp } from "../../src/api/app.ts";
import { CaptureService } from "../../src/capture/service.ts";
import { JobService } from "../../src/jobs/service.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { Rng } from "../../src/train/data/rng.ts";
import { synthImage } from "../../src/train/synth.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";
import { expectError, LOOPBACK } from "./_app_setup.ts";

const MODEL_BYTES = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));
const IMGSZ = 128;
const NC = 3;
const CONFIG = { imgsz: IMGSZ, batch_size: 2, epochs: 1 };

async function setup(withCapture = true) {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-ft-captures-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 2 * MODEL_BYTES.length });
  registry.setActivator(async (meta, bytes) => {
    await pool.swap(meta.name, meta.version, bytes);
  });
  await registry.add("default", MODEL_BYTES, { source: { type: "upload" }, activate: true });
  const trainer = new TestTrainer();
  // The first job waits at its first step until close, so it and those queued behind it keep their datasets
  // (a finished job's dataset is removed) while the test reads them.
  trainer.holdAt(0);
  const jobs = await JobService.open({ dataDir, trainer, log: () => {} });
  const capture = withCapture ? await CaptureService.open(dataDir, () => {}) : null;
  const app = createApp({ pool, registry, jobs, capture });
  const call = (path: string, init: RequestInit = {}) => Promise.resolve(app.request(path, init, LOOPBACK));
  return {
    dataDir,
    registry,
    call,
    capture,
    async close() {
      await jobs.close();
      await capture?.idle();
      await pool.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

const json = (method: string, body: unknown) => ({
  method,
  body: JSON.stringify(body),
  headers: { "content-type": "application/json" },
});

Deno.test("finetune from captures: the job's dataset is the labelled captures, train and val splits kept", async () => {
  const s = await setup();
  try {
    await expectError(
      s.call("/v1/models/default/finetune", json("POST", { config: CONFIG, source: "captures" })),
      400,
      "no_labelled_captures",
    );
    assert.deepEqual((await (await s.call("/v1/jobs")).json()).jobs, [], "nothing queued");
    await s.call("/v1/models/default/capture", json("PUT", { mode: "all" }));
    for (let seed = 0; seed < 5; seed++) {
      const { rgb } = synthImage(IMGSZ, new Rng(seed));
      const image = await sharp(rgb, { raw: { width: IMGSZ, height: IMGSZ, channels: 3 } }).png().toBuffer();
      const res = await s.call("/v1/models/default/detect", {
        method: "POST",
        body: new Uint8Array(image),
        headers: { "content-type": "image/png" },
      });
      assert.equal(res.status, 200);
    }
    await s.capture!.idle();
    const { captures } = await (await s.call("/v1/captures?model=default")).json();
    const box = { x1: 8, y1: 8, x2: 40, y2: 56 };
    const splits = ["train", "train", "val", "train"]; // the fifth stays new: not in the dataset
    for (const [i, split] of splits.entries()) {
      const labels = [{ class_id: i % NC, box }];
      assert.equal(
        (await s.call(`/v1/captures/${captures[i].id}/labels`, json("PUT", { labels, split }))).status,
        200,
      );
    }
    await s.call(`/v1/captures/${captures[3].id}/reject`, { method: "POST" }); // rejected: not in it either

    const res = await s.call(
      "/v1/models/default/finetune",
      json("POST", { config: CONFIG, source: "captures" }),
    );
    const job = await res.json();
    assert.equal(res.status, 202, JSON.stringify(job));
    const dataset = await loadDataset(join(s.dataDir, "jobs", job.id, "dataset"), { nc: NC });
    const stems = (xs: { name: string }[]) => xs.map((x) => x.name.split("/").at(-1)!.split(".")[0]).sort();
    assert.deepEqual(stems(dataset.train), [captures[0].id, captures[1].id].sort());
    assert.deepEqual(stems(dataset.val), [captures[2].id]);
    assert.deepEqual(Array.from(dataset.val[0].labels), [2, 24 / IMGSZ, 32 / IMGSZ, 32 / IMGSZ, 48 / IMGSZ]);

    // Captures plus an upload in one job, JSON `images` (train) and a multipart archive with its own val split.
    const upload = await sharp(synthImage(IMGSZ, new Rng(9)).rgb, {
      raw: { width: IMGSZ, height: IMGSZ, channels: 3 },
    })
      .png().toBuffer();
    const row = [1, 0.5, 0.5, 0.25, 0.25];
    const inline = await s.call(
      "/v1/models/default/finetune",
      json("POST", {
        config: CONFIG,
        source: "captures",
        images: [{ name: "up.png", data: upload.toString("base64"), labels: [row] }],
      }),
    );
    const withImages = await inline.json();
    assert.equal(inline.status, 202, JSON.stringify(withImages));
    const merged = await loadDataset(join(s.dataDir, "jobs", withImages.id, "dataset"), { nc: NC });
    assert.deepEqual(stems(merged.train), [captures[0].id, captures[1].id, "0_up"].sort());
    assert.deepEqual(stems(merged.val), [captures[2].id]);
    assert.deepEqual(Array.from(merged.train.find((x) => x.name.includes("0_up"))!.labels), row);

    const archive = zipSync({
      "set/images/a.png": new Uint8Array(upload),
      "set/labels/a.txt": new TextEncoder().encode(`${row.join(" ")}\n`),
      "set/val/images/b.png": new Uint8Array(upload),
      "set/val/labels/b.txt": new TextEncoder().encode(""),
    });
    const form = new FormData();
    form.set("config", JSON.stringify(CONFIG));
    form.set("source", "captures");
    form.set("dataset", new File([archive], "set.zip"));
    const multipart = await s.call("/v1/models/default/finetune", { method: "POST", body: form });
    const withArchive = await multipart.json();
    assert.equal(multipart.status, 202, JSON.stringify(withArchive));
    const both = await loadDataset(join(s.dataDir, "jobs", withArchive.id, "dataset"), { nc: NC });
    assert.deepEqual(stems(both.train), [captures[0].id, captures[1].id, "0_a"].sort());
    assert.deepEqual(
      stems(both.val),
      [captures[2].id, "0_b"].sort(),
      "the upload's val split joins the captures'",
    );
    const other = new FormData();
    other.set("source", "camera");
    other.set("dataset", new File([archive], "set.zip"));
    await expectError(
      s.call("/v1/models/default/finetune", { method: "POST", body: other }),
      422,
      "invalid_body",
    );
    await expectError(
      s.call("/v1/models/default/finetune", json("POST", { config: CONFIG })),
      422,
      "invalid_body",
    );
    await expectError(
      s.call("/v1/models/default/finetune", json("POST", { config: CONFIG, source: "camera" })),
      422,
      "invalid_body",
    );
  } finally {
    await s.close();
  }
});

Deno.test("finetune from captures on a server without capture: 400, nothing queued", async () => {
  const s = await setup(false);
  try {
    await expectError(
      s.call("/v1/models/default/finetune", json("POST", { config: CONFIG, source: "captures" })),
      400,
      "invalid_body",
    );
    assert.deepEqual((await (await s.call("/v1/jobs")).json()).jobs, []);
  } finally {
    await s.close();
  }
});

Deno.test("finetune from captures with replay_fraction: this round's train captures plus that share of earlier ones", async () => {
  const s = await setup();
  try {
    await s.call("/v1/models/default/capture", json("PUT", { mode: "all" }));
    /** Detects `n` frames and labels each with `split`; returns their capture ids. */
    const labelled = async (seed: number, splits: string[]) => {
      const before = new Set(
        ((await (await s.call("/v1/captures?model=default")).json()).captures as { id: string }[]).map((c) =>
          c.id
        ),
      );
      for (let i = 0; i < splits.length; i++) {
        const { rgb } = synthImage(IMGSZ, new Rng(seed + i));
        const image = await sharp(rgb, { raw: { width: IMGSZ, height: IMGSZ, channels: 3 } }).png()
          .toBuffer();
        const res = await s.call("/v1/models/default/detect", {
          method: "POST",
          body: new Uint8Array(image),
          headers: { "content-type": "image/png" },
        });
        await res.body?.cancel();
      }
      await s.capture!.idle();
      const all = (await (await s.call("/v1/captures?model=default")).json()).captures as { id: string }[];
      const ids = all.map((c) => c.id).filter((id) => !before.has(id)).reverse(); // oldest first
      for (const [i, split] of splits.entries()) {
        const res = await s.call(`/v1/captures/${ids[i]}/labels`, json("PUT", { labels: [], split }));
        assert.equal(res.status, 200);
      }
      return ids;
    };
    const tick = () => new Promise((r) => setTimeout(r, 5)); // capture times and the version's differ
    const earlier = await labelled(20, ["train", "train", "train", "val"]);
    await tick();
    const base = await s.registry.add("default", MODEL_BYTES, { source: { type: "upload" } });
    await tick();
    const fresh = await labelled(30, ["train", "train"]);
    // 2 new train captures; replayed r of 3 earlier ones so that r / (2 + r) is 1/3 -> r = 1.
    const res = await s.call(
      `/v1/models/default/finetune?base_version=${base.version}`,
      json("POST", { config: { ...CONFIG, replay_fraction: 1 / 3 }, source: "captures" }),
    );
    const job = await res.json();
    assert.equal(res.status, 202, JSON.stringify(job));
    const dataset = await loadDataset(join(s.dataDir, "jobs", job.id, "dataset"), { nc: NC });
    const stems = (xs: { name: string }[]) => xs.map((x) => x.name.split("/").at(-1)!.split(".")[0]);
    const train = stems(dataset.train);
    assert.equal(train.length, 3);
    assert.deepEqual(train.filter((id) => fresh.includes(id)).sort(), [...fresh].sort(), "every new capture");
    assert.equal(train.filter((id) => earlier.slice(0, 3).includes(id)).length, 1, "one earlier capture");
    assert.deepEqual(stems(dataset.val), [earlier[3]], "val captures are all used");
  } finally {
    await s.close();
  }
});
