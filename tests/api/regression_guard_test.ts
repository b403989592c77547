// The forgetting guard and the regression-set routes: under `if_better` a result that scores well on the site's
// val captures but has forgotten the regression set is stored and not activated; a result that keeps its score
// there is activated; `always` is not guarded. The set comes from an uploaded archive or the val captures, is
// validated against the model's classes, and its writes need the key.
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import sharp from "sharp";
import { createApp } from "../../src/api/app.ts";
import { guardedPublish } from "../../src/api/forgetting_guard.ts";
import { scoreOnDataset } from "../../src/api/regression_score.ts";
import { CaptureService } from "../../src/capture/service.ts";
import type { Job } from "../../src/jobs/types.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { Rng } from "../../src/train/data/rng.ts";
import { newModelBytes } from "../../src/train/new_model.ts";
import { SYNTH_CLASSES, synthImage, writeSynthDataset } from "../../src/train/synth.ts";
import { expectError, LOOPBACK, REMOTE } from "./_app_setup.ts";

const MODEL_BYTES = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));
const IMGSZ = 128;
const NC = SYNTH_CLASSES.length;
/** A freshly initialised model: the same classes, nothing learnt (what total forgetting looks like). */
const FORGOTTEN = newModelBytes({
  nc: NC,
  names: [...SYNTH_CLASSES],
  depth: 0.33,
  width: 0.125,
  imgsz: IMGSZ,
});
/** The site val evaluation the trainer reports: the result "improved" there in every case below. */
const IMPROVED = { base: { map50: 0.5, map50_95: 0.3 }, result: { map50: 0.6, map50_95: 0.4 } };

async function setup(apiKey: string | null = null) {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-regression-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 4 * MODEL_BYTES.length });
  registry.setActivator(async (meta, bytes) => {
    await pool.swap(meta.name, meta.version, bytes);
  });
  await registry.add("default", MODEL_BYTES, { source: { type: "upload" }, activate: true });
  const capture = await CaptureService.open(dataDir, () => {});
  const app = createApp({ pool, registry, capture, apiKey });
  const call = (path: string, init: RequestInit = {}, env: object = LOOPBACK) =>
    Promise.resolve(app.request(path, init, env));
  const logs: string[] = [];
  const publish = guardedPublish(registry, capture, nativeBackend, (m) => logs.push(m));
  return {
    dataDir,
    registry,
    capture,
    call,
    publish,
    logs,
    async close() {
      await capture.idle();
      await pool.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** A zip of `n` synthetic shape images in YOLO layout (what the default model was trained on). */
async function shapesZip(dir: string, n: number, seed: number): Promise<Uint8Array<ArrayBuffer>> {
  const set = join(dir, `set-${seed}`);
  const names = await writeSynthDataset(set, { n, imgsz: IMGSZ, seed });
  const files: Record<string, Uint8Array> = {};
  for (const name of names) {
    const stem = name.slice(0, -4);
    files[`images/${name}`] = await Deno.readFile(join(set, "images", name));
    files[`labels/${stem}.txt`] = await Deno.readFile(join(set, "labels", `${stem}.txt`));
  }
  return zipSync(files) as Uint8Array<ArrayBuffer>;
}

const job = (activate: "if_better" | "always") =>
  ({ id: "job-1", model: "default", baseVersion: 1, config: { activate } }) as unknown as Job;

Deno.test("forgetting guard: a result that forgot the regression set is kept but not activated", async () => {
  const s = await setup();
  try {
    const zip = await shapesZip(s.dataDir, 6, 61);
    const put = await s.call("/v1/models/default/regression-set?max_regression=0.05", {
      method: "PUT",
      body: zip,
      headers: { "content-type": "application/zip" },
    });
    const meta = await put.json();
    assert.equal(put.status, 200, JSON.stringify(meta));
    assert.deepEqual([meta.source, meta.images, meta.max_regression], ["upload", 6, 0.05]);
    const set = (await s.capture.regression.get("default"))!;
    const baseScore = await scoreOnDataset(nativeBackend, MODEL_BYTES, set.dir, NC);
    assert.ok(baseScore.map50_95 > 0.3, `the base knows these shapes: ${JSON.stringify(baseScore)}`);

    const forgot = await s.publish(job("if_better"), FORGOTTEN, IMPROVED);
    assert.equal(forgot.activated, false);
    assert.equal(s.registry.model("default").active, 1, "the base keeps serving");
    assert.equal(forgot.metrics!.base_regression_map50_95, baseScore.map50_95);
    assert.ok(forgot.metrics!.regression_map50_95 < baseScore.map50_95 - 0.05);
    assert.equal(forgot.metrics!.map50_95, IMPROVED.result.map50_95, "the site val scores are kept too");
    assert.match(s.logs.join("\n"), /not activated, mAP@0.5:0.95 on default's regression set fell/);

    const kept = await s.publish(job("if_better"), MODEL_BYTES, IMPROVED);
    assert.deepEqual([kept.activated, kept.metrics!.regression_map50_95], [true, baseScore.map50_95]);
    const always = await s.publish(job("always"), FORGOTTEN, IMPROVED);
    assert.equal(always.activated, true, "`always` is not guarded");
    assert.equal(always.metrics!.regression_map50_95, undefined);
  } finally {
    await s.close();
  }
});

Deno.test("regression-set routes: from val captures, bad archive listed, GET/DELETE, writes need the key", async () => {
  const s = await setup();
  try {
    await expectError(s.call("/v1/models/default/regression-set"), 404, "regression_set_not_found");
    const fromCaptures = {
      method: "PUT",
      body: JSON.stringify({ source: "captures", max_regression: 0.02 }),
      headers: { "content-type": "application/json" },
    };
    await expectError(s.call("/v1/models/default/regression-set", fromCaptures), 400, "no_labelled_captures");
    await s.capture.policies.set("default", { ...s.capture.policies.get("default"), mode: "all" });
    for (let seed = 0; seed < 3; seed++) {
      const { rgb } = synthImage(IMGSZ, new Rng(seed));
      const png = await sharp(rgb, { raw: { width: IMGSZ, height: IMGSZ, channels: 3 } }).png().toBuffer();
      await s.call("/v1/models/default/detect", {
        method: "POST",
        body: new Uint8Array(png),
        headers: { "content-type": "image/png" },
      });
    }
    await s.capture.idle();
    const ids = s.capture.store.all({ model: "default" }).map((c) => c.id);
    for (const [i, id] of ids.entries()) {
      await s.capture.store.update(id, (m) => ({
        ...m,
        status: "labelled",
        labels: [],
        split: i === 0 ? "train" : "val",
      }));
    }
    const made = await (await s.call("/v1/models/default/regression-set", fromCaptures)).json();
    assert.deepEqual([made.source, made.images, made.max_regression], ["captures", 2, 0.02]);
    assert.deepEqual(await (await s.call("/v1/models/default/regression-set")).json(), made);

    const bad = zipSync({
      "images/a.png": new TextEncoder().encode("not a png"),
      "labels/a.txt": new Uint8Array(),
    });
    const refused = await s.call("/v1/models/default/regression-set", {
      method: "PUT",
      body: bad as Uint8Array<ArrayBuffer>,
      headers: { "content-type": "application/zip" },
    });
    const body = await refused.json();
    assert.equal(refused.status, 400);
    assert.equal(body.error.code, "invalid_dataset");
    assert.equal(body.error.problems[0].file, "images/a.png");
    assert.deepEqual(
      await (await s.call("/v1/models/default/regression-set")).json(),
      made,
      "the old set stays",
    );

    await expectError(
      s.call("/v1/models/default/regression-set", {
        method: "PUT",
        body: "x",
        headers: { "content-type": "text/plain" },
      }),
      415,
      "unsupported_media_type",
    );
    await expectError(
      s.call("/v1/models/default/regression-set", { method: "DELETE" }, REMOTE),
      403,
      "forbidden",
    );
    await expectError(s.call("/v1/models/nope/regression-set", fromCaptures), 404, "model_not_found");
    assert.equal((await s.call("/v1/models/default/regression-set", { method: "DELETE" })).status, 204);
    await expectError(s.call("/v1/models/default/regression-set"), 404, "regression_set_not_found");
    const entries = [...Deno.readDirSync(join(s.dataDir, "captures", "regression"))].map((e) => e.name);
    assert.deepEqual(entries, [], "no staging or old sets left behind");
  } finally {
    await s.close();
  }
});
