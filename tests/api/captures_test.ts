// Capture over HTTP on the embedded default model: every detect family offers its frames, the policy routes,
// `uncertain` keeping only frames in its band, eviction sparing labelled frames, the captures API (list with
// cursor, labels validated against the model and the image, reject, delete, export) and its write guards.
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { createApp } from "../../src/api/app.ts";
import { defaultSplit } from "../../src/capture/labels.ts";
import { CaptureService } from "../../src/capture/service.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { Rng } from "../../src/train/data/rng.ts";
import { synthImage } from "../../src/train/synth.ts";
import { extractArchive } from "../../src/train/data/archive.ts";
import { loadDataset } from "../../src/train/data/dataset.ts";
import { expectError, LOOPBACK, REMOTE } from "./_app_setup.ts";

const MODEL_BYTES = await Deno.readFile(new URL("../../models/default.onnx", import.meta.url));
const IMGSZ = 128; // models/default.onnx's fixed input
const NC = 3;
const KEY = "capture-test-key";

async function png(seed: number): Promise<Uint8Array<ArrayBuffer>> {
  const { rgb } = synthImage(IMGSZ, new Rng(seed));
  return new Uint8Array(
    await sharp(rgb, { raw: { width: IMGSZ, height: IMGSZ, channels: 3 } }).png().toBuffer(),
  );
}

interface Setup {
  call: (path: string, init?: RequestInit, env?: object) => Promise<Response>;
  capture: CaptureService;
  close: () => Promise<void>;
}

async function setup(apiKey: string | null = null): Promise<Setup> {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-captures-" });
  const pool = new ModelPool(nativeBackend);
  await pool.swap("default", 1, MODEL_BYTES);
  const capture = await CaptureService.open(dataDir, () => {});
  const app = createApp({ pool, capture, apiKey });
  return {
    call: (path, init = {}, env = LOOPBACK) => Promise.resolve(app.request(path, init, env)),
    capture,
    async close() {
      await capture.idle();
      await pool.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

const put = (body: unknown, headers: Record<string, string> = {}) => ({
  method: "PUT",
  body: JSON.stringify(body),
  headers: { "content-type": "application/json", ...headers },
});
const detect = (image: Uint8Array<ArrayBuffer>, query = "", headers: Record<string, string> = {}) => ({
  path: `/v1/models/default/detect${query}`,
  init: { method: "POST", body: image, headers: { "content-type": "image/png", ...headers } },
});

async function captures(s: Setup, query = "model=default&limit=500") {
  await s.capture.idle();
  const res = await s.call(`/v1/captures?${query}`);
  assert.equal(res.status, 200);
  return await res.json();
}

Deno.test("capture policy: off by default, PUT saves it (defaults filled in), bad ones 422, unknown model 404", async () => {
  const s = await setup();
  try {
    assert.equal((await (await s.call("/v1/models/default/capture")).json()).mode, "off");
    const saved = await (await s.call("/v1/models/default/capture", put({ mode: "sample", rate: 0.5 })))
      .json();
    assert.deepEqual([saved.mode, saved.rate, saved.max_per_hour], ["sample", 0.5, 600]);
    assert.deepEqual(await (await s.call("/v1/models/default/capture")).json(), saved);
    await expectError(s.call("/v1/models/default/capture", put({ mode: "often" })), 422, "invalid_body");
    await expectError(
      s.call("/v1/models/default/capture", put({ mode: "uncertain", uncertain: { low: 0.7, high: 0.2 } })),
      422,
      "invalid_body",
    );
    await expectError(s.call("/v1/models/nope/capture", put({ mode: "all" })), 404, "model_not_found");
    // Nothing captured while off: detect answers, no capture appears.
    await s.call("/v1/models/default/capture", put({ mode: "off" }));
    const { path, init } = detect(await png(1));
    assert.equal((await s.call(path, init)).status, 200);
    assert.deepEqual((await captures(s)).captures, []);
  } finally {
    await s.close();
  }
});

Deno.test("capture all: native, DeepStack and v2 BYTES frames stored as sent, with predictions and source", async () => {
  const s = await setup();
  try {
    await s.call("/v1/models/default/capture", put({ mode: "all" }));
    const [a, b, c] = [await png(11), await png(12), await png(13)];
    const native = detect(a, "?conf=0.1", { "x-camera-id": "gate" });
    const answer = await (await s.call(native.path, native.init)).json();
    const form = new FormData();
    form.append("image", new File([b], "b.png"));
    assert.equal((await s.call("/v1/vision/custom/default", { method: "POST", body: form })).status, 200);
    const v2 = { inputs: [{ name: "images", shape: [1], datatype: "BYTES", data: [c.toBase64()] }] };
    const inferred = await s.call("/v2/models/default/infer", {
      method: "POST",
      body: JSON.stringify(v2),
      headers: { "content-type": "application/json" },
    });
    assert.equal(inferred.status, 200);

    const list = (await captures(s)).captures;
    assert.deepEqual(list.map((x: { source: { route: string } }) => x.source.route), [
      "v2",
      "deepstack",
      "native",
    ]);
    for (const [capture, sent] of [[list[0], c], [list[1], b], [list[2], a]] as const) {
      const image = await s.call(`/v1/captures/${capture.id}/image`);
      assert.equal(image.headers.get("content-type"), "image/png");
      assert.deepEqual(new Uint8Array(await image.arrayBuffer()), sent, "the bytes as the client sent them");
      assert.deepEqual([capture.status, capture.model, capture.version, capture.width], [
        "new",
        "default",
        1,
        128,
      ]);
      assert.equal(capture.source.client, "127.0.0.1");
    }
    assert.equal(list[2].source.camera, "gate");
    assert.equal(list[1].source.camera, null);
    assert.deepEqual(list[2].predictions, answer.detections, "the native answer's detections");
    assert.deepEqual(await (await s.call(`/v1/captures/${list[0].id}`)).json(), list[0]);
    const metrics = await (await s.call("/metrics")).text();
    assert.match(metrics, /^kestrel_capture_stored_total 3$/m);
    assert.match(metrics, /^kestrel_capture_dropped_total\{reason="queue_full"\} 0$/m);
  } finally {
    await s.close();
  }
});

Deno.test("capture uncertain keeps exactly the frames with a detection in [low, high)", async () => {
  const s = await setup();
  const band = { low: 0.3, high: 0.6 };
  try {
    await s.call("/v1/models/default/capture", put({ mode: "uncertain", uncertain: band }));
    const expected: Uint8Array[] = [];
    let outside = 0;
    for (let seed = 100; seed < 112; seed++) {
      const image = await png(seed);
      const { path, init } = detect(image, "?conf=0.05");
      const { detections } = await (await s.call(path, init)).json();
      const inBand = detections.some((d: { confidence: number }) =>
        d.confidence >= band.low && d.confidence < band.high
      );
      if (inBand) expected.push(image);
      else outside++;
    }
    assert.ok(
      expected.length > 0 && outside > 0,
      `the frames exercise both sides: ${expected.length} in band`,
    );
    const list = (await captures(s)).captures.reverse();
    const stored = await Promise.all(
      list.map(async (c: { id: string }) =>
        new Uint8Array(await (await s.call(`/v1/captures/${c.id}/image`)).arrayBuffer())
      ),
    );
    assert.deepEqual(stored, expected);
  } finally {
    await s.close();
  }
});

Deno.test("capture max_bytes: the oldest new frames are evicted, labelled ones kept; counted in /metrics", async () => {
  const s = await setup();
  try {
    const image = await png(7);
    // Room for two frames and a half: a third frame evicts.
    await s.call(
      "/v1/models/default/capture",
      put({ mode: "all", max_bytes: Math.floor(image.length * 2.5) }),
    );
    const send = async () => {
      const { path, init } = detect(image);
      assert.equal((await s.call(path, init)).status, 200);
      await s.capture.idle();
    };
    await send();
    const [first] = (await captures(s)).captures;
    const labelled = await s.call(`/v1/captures/${first.id}/labels`, put({ labels: [] }));
    assert.equal(labelled.status, 200);
    for (let i = 0; i < 3; i++) await send();
    const list = (await captures(s)).captures;
    assert.equal(list.length, 2);
    assert.equal(list.at(-1).id, first.id, "the labelled frame is still there");
    assert.match(await (await s.call("/metrics")).text(), /^kestrel_capture_evicted_total 2$/m);
  } finally {
    await s.close();
  }
});

Deno.test("captures API: labels checked against nc and the image, default split, reject, delete, filters", async () => {
  const s = await setup();
  try {
    await s.call("/v1/models/default/capture", put({ mode: "all" }));
    for (let seed = 20; seed < 25; seed++) {
      const { path, init } = detect(await png(seed), "", { "x-camera-id": seed % 2 ? "odd" : "even" });
      await s.call(path, init);
    }
    const all = (await captures(s)).captures;
    assert.equal(all.length, 5);
    const page = await captures(s, "model=default&limit=2");
    const rest = await captures(s, `model=default&limit=10&cursor=${page.next_cursor}`);
    assert.deepEqual(
      [...page.captures, ...rest.captures].map((c) => c.id),
      all.map((c: { id: string }) => c.id),
    );
    assert.equal(rest.next_cursor, null);
    assert.equal((await captures(s, "camera=odd")).captures.length, 2);

    const [a, b, c] = all;
    const box = { x1: 10, y1: 20, x2: 60, y2: 90 };
    const bad = await expectError(
      s.call(
        `/v1/captures/${a.id}/labels`,
        put({ labels: [{ class_id: NC, box }, { class_id: 0, box: { ...box, x2: 129 } }] }),
      ),
      400,
      "invalid_labels",
    );
    assert.match(bad.message, /class_id 3/);
    assert.match(bad.message, /outside the 128x128 image/);
    await expectError(
      s.call(`/v1/captures/${a.id}/labels`, put({ labels: [{ class_id: 0 }] })),
      422,
      "invalid_body",
    );
    await expectError(
      s.call(`/v1/captures/0000000zz-000-000000/labels`, put({ labels: [] })),
      404,
      "capture_not_found",
    );
    await expectError(s.call(`/v1/captures/..%2Fetc`), 400, "invalid_request");

    const labelled =
      await (await s.call(`/v1/captures/${a.id}/labels`, put({ labels: [{ class_id: 2, box }] }))).json();
    assert.deepEqual([labelled.status, labelled.labels, labelled.split], [
      "labelled",
      [{ class_id: 2, box }],
      defaultSplit(a.id),
    ]);
    const val = await (await s.call(`/v1/captures/${b.id}/labels`, put({ labels: [], split: "val" }))).json();
    assert.equal(val.split, "val");
    assert.equal((await s.call(`/v1/captures/${c.id}/reject`, { method: "POST" })).status, 200);
    const reason = { ...put({ reason: "blurred" }), method: "POST" };
    assert.equal(
      (await (await s.call(`/v1/captures/${c.id}/reject`, reason)).json()).reject_reason,
      "blurred",
    );
    assert.equal((await s.call(`/v1/captures/${all[3].id}`, { method: "DELETE" })).status, 204);
    await expectError(s.call(`/v1/captures/${all[3].id}`), 404, "capture_not_found");
    await expectError(s.call(`/v1/captures/${all[3].id}/image`), 404, "capture_not_found");

    assert.deepEqual((await captures(s, "status=labelled")).captures.map((x: { id: string }) => x.id), [
      a.id,
      b.id,
    ]);
    // a's split is its id's hash (1 in 10 to val); b was put in val.
    const valIds = [a, b].filter((x) => x === b || defaultSplit(x.id) === "val").map((x) => x.id);
    assert.deepEqual((await captures(s, "split=val")).captures.map((x: { id: string }) => x.id), valIds);
    const summary = await (await s.call("/v1/captures/summary?model=default")).json();
    const trainA = defaultSplit(a.id) === "train" ? 1 : 0;
    assert.deepEqual(
      { ...summary, bytes: 0 },
      { new: 1, rejected: 1, labelled: { train: trainA, val: 2 - trainA }, bytes: 0 },
    );
    await expectError(s.call("/v1/captures?status=done"), 400, "invalid_request");
  } finally {
    await s.close();
  }
});

Deno.test("captures API: writes need the key (or loopback without one) and are refused cross-site", async () => {
  const keyless = await setup();
  try {
    await keyless.call("/v1/models/default/capture", put({ mode: "all" }));
    const { path, init } = detect(await png(3));
    await keyless.call(path, init);
    const [c] = (await captures(keyless)).captures;
    await expectError(
      keyless.call(`/v1/captures/${c.id}/labels`, put({ labels: [] }), REMOTE),
      403,
      "forbidden",
    );
    await expectError(keyless.call(`/v1/captures/${c.id}`, { method: "DELETE" }, REMOTE), 403, "forbidden");
    await expectError(
      keyless.call("/v1/models/default/capture", put({ mode: "off" }), REMOTE),
      403,
      "forbidden",
    );
    await expectError(
      keyless.call(`/v1/captures/${c.id}/reject`, {
        method: "POST",
        headers: { "sec-fetch-site": "cross-site" },
      }),
      403,
      "cross_site",
    );
    await expectError(keyless.call(`/v1/captures/${c.id}/image`, {}, REMOTE), 403, "forbidden");
    assert.equal(
      (await keyless.call("/v1/models/default/capture", {}, REMOTE)).status,
      200,
      "the policy is no secret",
    );
    assert.equal(
      (await (await keyless.call(`/v1/captures/${c.id}`)).json()).status,
      "new",
      "nothing changed",
    );
  } finally {
    await keyless.close();
  }
  const keyed = await setup(KEY);
  try {
    await expectError(keyed.call("/v1/models/default/capture", put({ mode: "all" })), 401, "unauthorized");
    const ok = await keyed.call(
      "/v1/models/default/capture",
      put({ mode: "all" }, { authorization: `Bearer ${KEY}` }),
    );
    assert.equal(ok.status, 200);
  } finally {
    await keyed.close();
  }
});

Deno.test("captures export: a zip of the labelled captures that the YOLO dataset reader loads", async () => {
  const s = await setup();
  const dir = await Deno.makeTempDir({ prefix: "kestrel-capture-export-" });
  try {
    await s.call("/v1/models/default/capture", put({ mode: "all" }));
    for (let seed = 30; seed < 33; seed++) {
      const { path, init } = detect(await png(seed));
      await s.call(path, init);
    }
    const [a, b, c] = (await captures(s)).captures;
    const box = { x1: 16, y1: 32, x2: 80, y2: 96 };
    await s.call(`/v1/captures/${a.id}/labels`, put({ labels: [{ class_id: 1, box }], split: "train" }));
    await s.call(`/v1/captures/${b.id}/labels`, put({ labels: [], split: "val" }));
    const res = await s.call("/v1/captures/export?model=default");
    assert.equal(res.headers.get("content-type"), "application/zip");
    await Deno.writeFile(join(dir, "export.zip"), new Uint8Array(await res.arrayBuffer()));
    const files = await extractArchive(join(dir, "export.zip"), join(dir, "set"));
    assert.deepEqual(files, [
      "data.yaml",
      `images/train/${a.id}.png`,
      `images/val/${b.id}.png`,
      `labels/train/${a.id}.txt`,
      `labels/val/${b.id}.txt`,
    ], `the unlabelled ${c.id} is not exported`);
    const set = await loadDataset(join(dir, "set"), { nc: NC });
    assert.deepEqual([set.train.length, set.val.length], [1, 1]);
    // The box in normalised centre form, as written with 6 decimals.
    assert.deepEqual(Array.from(set.train[0].labels), [1, 48 / IMGSZ, 64 / IMGSZ, 64 / IMGSZ, 64 / IMGSZ]);
    assert.equal(set.val[0].labels.length, 0);
    assert.deepEqual(
      await Deno.readFile(set.train[0].imagePath),
      new Uint8Array(await (await s.call(`/v1/captures/${a.id}/image`)).arrayBuffer()),
    );
    await expectError(s.call("/v1/captures/export?model=nope"), 404, "model_not_found");
  } finally {
    await s.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Reads that show no frame: a model's capture policy and its regression set's summary. */
const OPEN_READS = ["get /v1/models/{name}/capture", "get /v1/models/{name}/regression-set"];

Deno.test("every capture operation but OPEN_READS refuses a remote client when the server has no key", async () => {
  const s = await setup();
  try {
    await s.call("/v1/models/default/capture", put({ mode: "all" }));
    const { path, init } = detect(await png(5));
    await s.call(path, init);
    const [c] = (await captures(s)).captures;
    const doc = await (await s.call("/openapi.json")).json();
    const writes = Object.entries(doc.paths as Record<string, Record<string, { tags?: string[] }>>).flatMap((
      [p, ops],
    ) =>
      Object.entries(ops).filter(([m, op]) =>
        !OPEN_READS.includes(`${m} ${p}`) && op.tags?.includes("captures")
      ).map((
        [m],
      ) => [m, p])
    );
    assert.ok(writes.length >= 11, `guarded capture operations found: ${writes.map((w) => w.join(" "))}`);
    for (const [method, template] of writes) {
      const url = template.replace("{name}", "default").replace("{id}", c.id);
      const body = method === "get" ? {} : put({});
      const res = await s.call(url, { ...body, method: method.toUpperCase() }, REMOTE);
      const answer = await res.json();
      assert.deepEqual(
        [res.status, answer.error.code],
        [403, "forbidden"],
        `${method.toUpperCase()} ${template}`,
      );
    }
    assert.equal((await (await s.call(`/v1/captures/${c.id}`)).json()).status, "new", "nothing changed");
  } finally {
    await s.close();
  }
});

Deno.test("a capture that fails never fails the detect answer", async () => {
  const s = await setup();
  const logged: unknown[][] = [];
  const error = console.error;
  try {
    s.capture.offer = () => {
      throw new Error("disk on fire");
    };
    console.error = (...args: unknown[]) => void logged.push(args);
    const { path, init } = detect(await png(9));
    const res = await s.call(path, init);
    assert.equal(res.status, 200);
    assert.ok((await res.json()).detections);
    assert.match(String(logged[0]?.[0]), /capture of a native frame of default failed/);
  } finally {
    console.error = error;
    await s.close();
  }
});
