// Finding 2 of issue 12: loopback is not an access boundary. A page in the operator's browser must not be able
// to write (cross-site requests, simple media types), a rebound DNS name must not reach the server (Host), and
// no page may frame it. Each case below answered 2xx (or sent no header) before the fix.
import assert from "node:assert/strict";
import sharp from "sharp";
import { SECURITY_HEADERS } from "../../src/api/middleware/security_headers.ts";
import { defaultImageDecoder } from "../../src/image/decode.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { expectError, MAX_DATASET_BYTES, openTestApp, type TestApp } from "./_app_setup.ts";

const EVIL = "https://evil.example";
const test = (name: string, fn: () => Promise<void>) => Deno.test({ name, fn, sanitizeResources: false });

async function withApp(fn: (s: TestApp) => Promise<void>, deps: Parameters<typeof openTestApp>[0] = {}) {
  const s = await openTestApp(deps);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const upload = (s: TestApp, headers: Record<string, string>, query = "?activate=true") =>
  s.call(`/v1/models/tiny${query}`, { method: "POST", body: tinyYolo({ seed: 7 }), headers });

const png = async () =>
  (await sharp({ create: { width: 32, height: 24, channels: 3, background: { r: 40, g: 90, b: 160 } } })
    .png().toBuffer()).toBase64();

/** An inline fine-tune body with one valid image: the JSON form, so no archive code is involved. */
const inlineJob = async () =>
  JSON.stringify({
    config: { epochs: 1 },
    images: [{ name: "a.png", data: await png(), labels: [[0, 0.5, 0.5, 0.2, 0.2]] }],
  });

test("a cross-site upload (Origin of another site, text/plain: no preflight) gets 403 and changes nothing", async () => {
  await withApp(async (s) => {
    const before = s.registry.model("tiny");
    await expectError(upload(s, { origin: EVIL, "content-type": "text/plain" }), 403, "cross_site");
    await expectError(
      upload(s, { origin: EVIL, "content-type": "application/octet-stream" }),
      403,
      "cross_site",
    );
    await expectError(upload(s, { origin: "null" }), 403, "cross_site");
    await expectError(upload(s, { "sec-fetch-site": "cross-site" }), 403, "cross_site");
    await expectError(upload(s, { "sec-fetch-site": "same-site" }), 403, "cross_site");
    // Another port on the same host is another origin (another local web app).
    await expectError(upload(s, { origin: "http://localhost:3000" }), 403, "cross_site");
    assert.deepEqual(s.registry.model("tiny"), before);
    assert.equal(s.pool.get("tiny")?.ref.version, 1);
  });
});

test("activate, fine-tune and job cancel refuse cross-site requests too", async () => {
  await withApp(async (s) => {
    await s.registry.add("tiny", tinyYolo({ seed: 2 }), { source: { type: "upload" }, activate: false });
    const activate = await s.call("/v1/models/tiny/activate", {
      method: "POST",
      body: JSON.stringify({ version: 2 }),
      headers: { "content-type": "application/json", origin: EVIL, "sec-fetch-site": "cross-site" },
    });
    await expectError(activate, 403, "cross_site");
    assert.equal(s.registry.model("tiny").active, 1);

    const form = new FormData();
    form.append("config", "{}");
    form.append("dataset", new File([new Uint8Array(10)], "d.zip"));
    const finetune = s.call("/v1/models/tiny/finetune", {
      method: "POST",
      body: form,
      headers: { origin: EVIL },
    });
    await expectError(finetune, 403, "cross_site");
    assert.deepEqual(s.jobs.list(), []);

    const hold = s.trainer.holdAt(0);
    const submitted = await s.call("/v1/models/tiny/finetune", {
      method: "POST",
      body: await inlineJob(),
      headers: { "content-type": "application/json" },
    });
    assert.equal(submitted.status, 202, await submitted.clone().text());
    const job = await submitted.json();
    await hold.reached;
    const cancel = s.call(`/v1/jobs/${job.id}`, {
      method: "DELETE",
      headers: { "sec-fetch-site": "cross-site" },
    });
    await expectError(cancel, 403, "cross_site");
    assert.equal(s.jobs.get(job.id).status, "running");
    hold.release();
  });
});

test("same-origin browser requests and non-browser clients still write", async () => {
  await withApp(async (s) => {
    // What the dashboard at http://localhost sends (app.request's URL host is localhost).
    const dashboard = await upload(s, {
      origin: "http://localhost",
      "sec-fetch-site": "same-origin",
      "content-type": "application/octet-stream",
    }, "");
    assert.equal(dashboard.status, 201, await dashboard.text());
    const curl = await upload(s, { "content-type": "application/octet-stream" }, "");
    assert.equal(curl.status, 201, await curl.text());
    assert.equal((await upload(s, { "sec-fetch-site": "none" }, "")).status, 201, "typed by the user");
  });
});

test("writes accept only the media types the route documents (415 before the body is used)", async () => {
  await withApp(async (s) => {
    await expectError(upload(s, { "content-type": "text/plain" }), 415, "unsupported_media_type");
    await expectError(
      upload(s, { "content-type": "multipart/form-data; boundary=x" }),
      415,
      "unsupported_media_type",
    );
    await expectError(
      upload(s, { "content-type": "application/x-www-form-urlencoded" }),
      415,
      "unsupported_media_type",
    );
    await s.registry.add("tiny", tinyYolo({ seed: 2 }), { source: { type: "upload" }, activate: false });
    const activate = s.call("/v1/models/tiny/activate", {
      method: "POST",
      body: JSON.stringify({ version: 2 }),
      headers: { "content-type": "text/plain" },
    });
    await expectError(activate, 415, "unsupported_media_type");
    const detect = s.call("/v1/models/tiny/detect", {
      method: "POST",
      body: "x",
      headers: { "content-type": "text/plain" },
    });
    await expectError(detect, 415, "unsupported_media_type");
    assert.deepEqual(s.registry.model("tiny").versions.map((v) => v.version), [1, 2]);
    assert.equal(s.registry.model("tiny").active, 1);
  });
});

test("a Host the server does not answer to (DNS rebinding) gets 421 on every route", async () => {
  await withApp(async (s) => {
    for (
      const [method, path] of [["GET", "/v1/models"], ["GET", "/"], ["GET", "/healthz"], [
        "POST",
        "/v1/models/tiny",
      ]]
    ) {
      const res = s.call(path, { method, headers: { host: "evil.example:8000" } });
      await expectError(res, 421, "misdirected_host");
    }
    await expectError(s.call("/v1/models", { headers: { host: "evil.example/x" } }), 421, "misdirected_host");
    for (const host of ["localhost:8000", "127.0.0.1:8000", "[::1]:8000", "LOCALHOST"]) {
      assert.equal((await s.call("/v1/models", { headers: { host } })).status, 200, host);
    }
  });
  await withApp(async (s) => {
    assert.equal((await s.call("/v1/models", { headers: { host: "kestrel.lan:8000" } })).status, 200);
    await expectError(s.call("/v1/models", { headers: { host: "evil.example" } }), 421, "misdirected_host");
  }, { allowedHosts: ["kestrel.lan"] });
  await withApp(async (s) => {
    assert.equal((await s.call("/v1/models", { headers: { host: "anything.example" } })).status, 200);
  }, { allowedHosts: ["*"] });
});

test("every response forbids framing and type sniffing", async () => {
  await withApp(async (s) => {
    const responses = [
      await s.call("/"),
      await s.call("/v1/models"),
      await s.call("/docs"),
      await s.call("/nope"),
      await s.call("/v1/models/tiny/versions/1.onnx"),
      await upload(s, { origin: EVIL }),
      await s.call("/v1/models", { headers: { host: "evil.example" } }),
    ];
    for (const res of responses) {
      await res.body?.cancel();
      for (const [name, value] of Object.entries(SECURITY_HEADERS)) {
        assert.equal(res.headers.get(name), value, `${res.url} ${name}`);
      }
    }
    assert.equal(SECURITY_HEADERS["x-frame-options"], "DENY");
    assert.match(SECURITY_HEADERS["content-security-policy"], /frame-ancestors 'none'/);
  });
});

test("without an API key, a loopback request that came through a proxy may not write", async () => {
  await withApp(async (s) => {
    for (const header of ["x-forwarded-for", "forwarded", "x-real-ip"]) {
      const res = upload(s, { [header]: "203.0.113.5", "content-type": "application/octet-stream" });
      const error = await expectError(res, 403, "forbidden");
      assert.match(error.message, /--api-key/);
    }
    assert.deepEqual(s.registry.model("tiny").versions.map((v) => v.version), [1]);
  });
  await withApp(async (s) => {
    const res = await upload(s, {
      "x-forwarded-for": "203.0.113.5",
      "content-type": "application/octet-stream",
      authorization: "Bearer k3y",
    });
    assert.equal(res.status, 201, "with a key, proxied clients write");
  }, { apiKey: "k3y" });
});

test("GET /v1/server says whether writes need an API key (the dashboard's warning) and which decoder JPEGs get", async () => {
  await withApp(async (s) => {
    const info = await (await s.call("/v1/server")).json();
    assert.equal(info.auth, "loopback_only");
    assert.equal(info.limits.max_dataset_bytes, MAX_DATASET_BYTES);
    assert.equal(info.jpeg_decoder, defaultImageDecoder().jpegDecoder);
    assert.match(info.jpeg_decoder, /^(turbojpeg|sharp) \(/);
  });
  await withApp(async (s) => {
    assert.equal((await (await s.call("/v1/server")).json()).auth, "api_key");
  }, { apiKey: "k3y" });
});
