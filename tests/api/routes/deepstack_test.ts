import assert from "node:assert/strict";
import { referenceData } from "../../_helpers/reference.ts";
import sharp from "sharp";
import { createApp } from "../../../src/api/app.ts";
import { nativeBackend } from "../../../src/serving/backends/native.ts";
import { ModelPool } from "../../../src/serving/pool.ts";
import { Rng } from "../../../src/train/data/rng.ts";
import { synthImage } from "../../../src/train/synth.ts";
import {
  DEEPSTACK_PYTHON_DEFAULTS,
  DeepstackException,
  deepstackPythonDetect,
  FRIGATE_DEFAULTS,
  FRIGATE_ROWS,
  frigateDetectRaw,
  getObjectsSummary,
  requestsMultipart,
  requestsPost,
} from "./_deepstack_clients.ts";
import { startLoopbackServer } from "./_loopback_server.ts";

/** Frigate sends frames at its model input size; 320 is the size its DeepStack docs use. */
const FRAME = 320;
/** PIL's default JPEG quality, which Frigate's `image.save(format="JPEG")` uses. */
const PIL_JPEG_QUALITY = 75;
const SEEDS = [11, 12, 13, 14, 15, 16];
/** Both routes round boxes the same way; the issue allows 1 px. */
const BOX_TOLERANCE_PX = 1;
/**
 * Frigate's own 0.1 s api_timeout is a latency figure, measured by the deepstack_latency bench (no timed
 * asserts in tests); here requests get a bound that only catches a hang.
 */
const TEST_TIMEOUT_S = 30;
const DEFAULT_MODEL = new URL("../../../models/default.onnx", import.meta.url);
const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx", "images/bus.jpg");

const frame = (seed: number) => {
  const { rgb } = synthImage(FRAME, new Rng(seed));
  return sharp(rgb, { raw: { width: FRAME, height: FRAME, channels: 3 } }).jpeg({ quality: PIL_JPEG_QUALITY })
    .toBuffer().then((b) => new Uint8Array(b));
};

interface NativeDetection {
  class_id: number;
  class_name: string;
  confidence: number;
  box: { x1: number; y1: number; x2: number; y2: number };
}

async function nativeDetect(
  url: string,
  model: string,
  jpeg: Uint8Array<ArrayBuffer>,
  conf: number,
): Promise<NativeDetection[]> {
  const res = await fetch(`${url}/v1/models/${model}/detect?conf=${conf}`, {
    method: "POST",
    body: jpeg,
    headers: { "content-type": "image/jpeg" },
  });
  assert.equal(res.status, 200);
  return (await res.json()).detections;
}

function assertSamePredictions(got: Record<string, unknown>[], native: NativeDetection[], what: string) {
  assert.deepEqual(got.map((p) => p.label), native.map((d) => d.class_name), `${what}: labels`);
  assert.deepEqual(got.map((p) => p.confidence), native.map((d) => d.confidence), `${what}: confidences`);
  got.forEach((p, i) => {
    const b = native[i].box;
    for (const [k, v] of [["x_min", b.x1], ["y_min", b.y1], ["x_max", b.x2], ["y_max", b.y2]] as const) {
      assert.ok(Number.isInteger(p[k]), `${what}: ${k} is an integer`);
      assert.ok(Math.abs((p[k] as number) - v) <= BOX_TOLERANCE_PX, `${what}: ${k} ${p[k]} vs ${v}`);
    }
  });
}

const test = (name: string, fn: () => Promise<void>, ignore = false) =>
  Deno.test({ name, fn, ignore, sanitizeResources: false, sanitizeOps: false });

test("Frigate's deepstack detector, as it sends and parses, gets the native route's detections", async () => {
  const { server, close } = await startLoopbackServer();
  try {
    const names: string[] = (await (await fetch(`${server.url}/v1/models/default`)).json()).names;
    // Frigate's merged_labelmap for this model: index -> lower-case class name
    const labels = Object.fromEntries(names.map((n, i) => [i, n.toLowerCase()]));
    const config = {
      ...FRIGATE_DEFAULTS,
      api_url: `${server.url}/v1/vision/detection`,
      api_timeout: TEST_TIMEOUT_S,
      labels,
    };
    let seen = 0;
    for (const seed of SEEDS) {
      const jpeg = await frame(seed);
      const rows = await frigateDetectRaw(config, jpeg, FRAME, FRAME);
      const native = await nativeDetect(server.url, "default", jpeg, 0.45);
      seen += native.length;
      const expected = Array.from({ length: FRIGATE_ROWS }, () => new Float32Array(6));
      native.filter((d) => d.confidence >= 0.4).forEach((d, i) =>
        expected[i].set([
          d.class_id,
          d.confidence,
          d.box.y1 / FRAME,
          d.box.x1 / FRAME,
          d.box.y2 / FRAME,
          d.box.x2 / FRAME,
        ])
      );
      rows.forEach((row, i) => {
        assert.deepEqual([...row.slice(0, 2)], [...expected[i].slice(0, 2)], `seed ${seed} row ${i}`);
        row.slice(2).forEach((v, k) =>
          assert.ok(
            Math.abs(v - expected[i][2 + k]) * FRAME <= BOX_TOLERANCE_PX,
            `seed ${seed} row ${i} coord ${k}`,
          )
        );
      });

      const raw =
        await (await requestsPost(config.api_url, [["api_key", ""]], [["image", jpeg]], TEST_TIMEOUT_S))
          .json();
      assert.equal(raw.success, true);
      assert.equal(raw.code, 200);
      assert.equal(raw.count, raw.predictions.length);
      assert.ok(Number.isInteger(raw.inferenceMs) && Number.isInteger(raw.processMs));
      const confidences = raw.predictions.map((p: { confidence: number }) => p.confidence);
      assert.deepEqual(confidences, [...confidences].sort((a, b) => b - a), "highest confidence first");
      assertSamePredictions(raw.predictions, native, `seed ${seed}`);
    }
    assert.ok(seen > 0, "the frames gave no detections at all: the comparison would be empty");
  } finally {
    await close();
  }
});

test("deepstack-python's DeepstackObject (detection and custom_model) agrees with the native route", async () => {
  const { server, close } = await startLoopbackServer();
  try {
    const { hostname, port } = new URL(server.url);
    const ip = hostname;
    let seen = 0;
    for (const seed of SEEDS.slice(0, 3)) {
      const jpeg = await frame(seed);
      const native = await nativeDetect(
        server.url,
        "default",
        jpeg,
        DEEPSTACK_PYTHON_DEFAULTS.min_confidence,
      );
      seen += native.length;
      const plain = await deepstackPythonDetect({ ip, port: Number(port) }, jpeg);
      assertSamePredictions(plain, native, `seed ${seed} detection`);
      const custom = await deepstackPythonDetect({ ip, port: Number(port), custom_model: "default" }, jpeg);
      assertSamePredictions(custom, native, `seed ${seed} custom`);
      assert.deepEqual(
        getObjectsSummary(custom as { label: string }[]),
        getObjectsSummary(native.map((d) => ({ label: d.class_name }))),
      );
      // its min_confidence is a form field the server must honour
      const strict = 0.7;
      const strictNative = await nativeDetect(server.url, "default", jpeg, strict);
      assertSamePredictions(
        await deepstackPythonDetect({ ip, port: Number(port), min_confidence: strict }, jpeg),
        strictNative,
        `seed ${seed} min_confidence ${strict}`,
      );
    }
    assert.ok(seen > 0, "the frames gave no detections at all: the comparison would be empty");
    await assert.rejects(
      deepstackPythonDetect({ ip, port: Number(port), custom_model: "nope" }, await frame(SEEDS[0])),
      (err) => err instanceof DeepstackException && /Bad url supplied/.test(err.message),
    );
    // deepstack-python's list calls send `data={"api_key": ...}` alone: a urlencoded form
    for (const body of [undefined, new URLSearchParams({ api_key: "" })]) {
      const listed = await fetch(`${server.url}/v1/vision/custom/list`, { method: "POST", body });
      assert.deepEqual(await listed.json(), { success: true, models: ["default"] });
    }
  } finally {
    await close();
  }
});

/** An answer under /v1/vision must be DeepStack's error JSON with this status. */
async function expectDeepStackError(res: Response | Promise<Response>, status: number): Promise<string> {
  const r = await res;
  assert.match(r.headers.get("content-type") ?? "", /^application\/json/);
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assert.deepEqual(Object.keys(body).sort(), ["code", "error", "success"]);
  assert.equal(body.success, false);
  assert.equal(body.code, status);
  assert.equal(typeof body.error, "string");
  return body.error;
}

test("every error under /v1/vision is DeepStack's JSON: 404, 413, 415, 422, and the status as `code`", async () => {
  const maxBodyBytes = 200_000;
  const { server, close } = await startLoopbackServer({ maxBodyBytes });
  const url = `${server.url}/v1/vision/detection`;
  try {
    const jpeg = await frame(SEEDS[0]);
    const send = (files: [string, Uint8Array<ArrayBuffer>][], data: [string, string][] = []) =>
      requestsPost(url, data, files, TEST_TIMEOUT_S);
    const custom = (model: string) =>
      requestsPost(`${server.url}/v1/vision/custom/${model}`, [], [["image", jpeg]], TEST_TIMEOUT_S);
    assert.match(await expectDeepStackError(custom("nope"), 404), /nope/);
    await expectDeepStackError(fetch(`${server.url}/v1/vision/face`, { method: "POST" }), 404);
    await expectDeepStackError(fetch(url), 404);
    await expectDeepStackError(send([["image", new Uint8Array(maxBodyBytes + 1)]]), 413);
    await expectDeepStackError(
      fetch(url, { method: "POST", body: jpeg, headers: { "content-type": "image/jpeg" } }),
      415,
    );
    await expectDeepStackError(send([["image", new TextEncoder().encode("not an image")]]), 415);
    await expectDeepStackError(send([["image", jpeg.slice(0, jpeg.length >> 1)]]), 422);
    await expectDeepStackError(send([["picture", jpeg]]), 422);
    await expectDeepStackError(send([["image", jpeg]], [["min_confidence", "1.5"]]), 422);
    await expectDeepStackError(send([["image", jpeg]], [["min_confidence", "lots"]]), 422);
    await expectDeepStackError(custom("..bad"), 400);
    // the native routes keep their own shape
    const native = await fetch(`${server.url}/v1/models/nope/detect`, {
      method: "POST",
      body: jpeg,
      headers: { "content-type": "image/jpeg" },
    });
    assert.equal(native.status, 404);
    assert.equal((await native.json()).error.code, "model_not_found");
  } finally {
    await close();
  }
});

const pool = new ModelPool(nativeBackend);
await pool.swap("default", 1, await Deno.readFile(DEFAULT_MODEL));
await pool.swap("other", 1, await Deno.readFile(DEFAULT_MODEL));

const form = (data: [string, string][], image: Uint8Array<ArrayBuffer>) => {
  const { body, contentType } = requestsMultipart(data, [["image", image]]);
  return { method: "POST", body, headers: { "content-type": contentType } };
};

test("/v1/vision answers 503 in DeepStack's shape while models load", async () => {
  const app = createApp({ pool, isReady: () => false });
  await expectDeepStackError(app.request("/v1/vision/detection", form([], await frame(SEEDS[0]))), 503);
  await expectDeepStackError(app.request("/v1/vision/custom/list", { method: "POST" }), 503);
});

test("--deepstack-model picks the model /v1/vision/detection runs; default: the first served by name", async () => {
  const jpeg = await frame(SEEDS[0]);
  for (const [deepstackModel, expected] of [[null, "default"], ["other", "other"], ["gone", null]] as const) {
    const app = createApp({ pool, deepstackModel });
    const res = await app.request("/v1/vision/detection", form([], jpeg));
    if (expected === null) {
      assert.match(await expectDeepStackError(res, 404), /gone/);
      continue;
    }
    assert.equal(res.status, 200);
    const body = await res.json();
    const native = await (await app.request(`/v1/models/${expected}/detect?conf=0.45`, {
      method: "POST",
      body: jpeg,
      headers: { "content-type": "image/jpeg" },
    })).json();
    assertSamePredictions(body.predictions, native.detections, `deepstack model ${deepstackModel}`);
  }
});

test("api_key: ignored unless --detect-needs-key; then the form field or the Bearer key, else 401", async () => {
  const jpeg = await frame(SEEDS[0]);
  const open = createApp({ pool, apiKey: "s3cret" });
  for (const key of ["", "wrong", "s3cret"]) {
    assert.equal(
      (await open.request("/v1/vision/detection", form([["api_key", key]], jpeg))).status,
      200,
      key,
    );
  }
  const locked = createApp({ pool, apiKey: "s3cret", detectNeedsKey: true });
  assert.equal(
    (await locked.request("/v1/vision/detection", form([["api_key", "s3cret"]], jpeg))).status,
    200,
  );
  const bearer = form([], jpeg);
  assert.equal(
    (await locked.request("/v1/vision/custom/default", {
      ...bearer,
      headers: { ...bearer.headers, authorization: "Bearer s3cret" },
    })).status,
    200,
  );
  for (
    const data of [[], [["api_key", ""]], [["api_key", "s3cre"]], [["api_key", "s3cret "]]] as [
      string,
      string,
    ][][]
  ) {
    await expectDeepStackError(locked.request("/v1/vision/detection", form(data, jpeg)), 401);
  }
  // the flag without a key (startServer refuses it) lets nothing through rather than everything
  const keyless = createApp({ pool, detectNeedsKey: true });
  await expectDeepStackError(keyless.request("/v1/vision/detection", form([["api_key", ""]], jpeg)), 401);
  // the native detect route needs the Bearer key too
  const raw = { method: "POST", body: jpeg, headers: { "content-type": "image/jpeg" } };
  const denied = await locked.request("/v1/models/default/detect", raw);
  assert.equal(denied.status, 401);
  assert.equal((await denied.json()).error.code, "unauthorized");
  const allowed = await locked.request("/v1/models/default/detect", {
    ...raw,
    headers: { ...raw.headers, authorization: "Bearer s3cret" },
  });
  assert.equal(allowed.status, 200);
  await allowed.body?.cancel();
});

test(
  "yolov5n on bus.jpg: Frigate's request through /v1/vision/detection equals the native route",
  async () => {
    const { server, close } = await startLoopbackServer({
      models: [REFERENCE.path("models/yolov5n.onnx")],
    });
    try {
      const bus = await Deno.readFile(REFERENCE.url("images/bus.jpg"));
      const raw = await (await requestsPost(
        `${server.url}/v1/vision/custom/yolov5n`,
        [["api_key", ""]],
        [["image", bus]],
        TEST_TIMEOUT_S,
      )).json();
      const native = await nativeDetect(server.url, "yolov5n", bus, 0.45);
      assert.ok(native.length > 0);
      assertSamePredictions(raw.predictions, native, "bus.jpg");
    } finally {
      await close();
    }
  },
  REFERENCE.missing,
);

test("--detect-needs-key without a key refuses to start", async () => {
  assert.equal(Deno.env.get("KESTREL_API_KEY"), undefined, "this test needs KESTREL_API_KEY unset");
  await assert.rejects(startLoopbackServer({ detectNeedsKey: true }), /--detect-needs-key needs a key/);
});
