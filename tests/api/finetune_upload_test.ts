/**
 * How POST /v1/models/{name}/finetune receives a multipart upload: streamed to a staging directory in the data
 * dir (in any field order, with or without a Content-Length), counted against --max-dataset-bytes as it streams,
 * malformed bodies and entries the file system refuses answered with 4xx, --max-pixels applied to the dataset's
 * images, and nothing left in the data dir by a refused upload.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import sharp from "sharp";
import { createApp } from "../../src/api/app.ts";
import { JobService } from "../../src/jobs/service.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { makeTar } from "../train/data/_tar.ts";

const NC = 2;
const MAX_DATASET_BYTES = 256 * 1024;
const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };
const WIDTH = 32, HEIGHT = 24;
const enc = new TextEncoder();

const png = async () =>
  new Uint8Array(
    await sharp({
      create: { width: WIDTH, height: HEIGHT, channels: 3, background: { r: 40, g: 90, b: 160 } },
    })
      .png().toBuffer(),
  );

async function dataset(): Promise<Record<string, Uint8Array>> {
  return { "images/a.png": await png(), "labels/a.txt": enc.encode("1 0.5 0.5 0.25 0.25\n") };
}

async function withApp(
  maxPixels: number | undefined,
  fn: (s: Awaited<ReturnType<typeof setup>>) => Promise<void>,
) {
  const s = await setup(maxPixels);
  try {
    await fn(s);
  } finally {
    await s.jobs.close();
    await s.pool.close();
    await Deno.remove(s.dataDir, { recursive: true });
  }
}

async function setup(maxPixels?: number) {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-upload-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 64 * 1024 });
  await registry.add("tiny", tinyYolo({ nc: NC }), { source: { type: "upload" } });
  const jobs = await JobService.open({ dataDir, trainer: new TestTrainer(), log: () => {} });
  const app = createApp({ pool, registry, jobs, maxDatasetBytes: MAX_DATASET_BYTES, maxPixels });
  const post = (body: BodyInit, headers: Record<string, string> = {}) =>
    app.request("/v1/models/tiny/finetune?base_version=1", { method: "POST", body, headers }, LOOPBACK);
  /** What the data dir's jobs folder holds besides stored jobs (staging left behind). */
  const leftovers = async () =>
    (await Array.fromAsync(Deno.readDir(join(dataDir, "jobs")))).filter((e) => e.name.startsWith("."));
  return { dataDir, pool, jobs, post, leftovers };
}

/** A multipart body written by hand, so field order, framing and chunking are the test's to choose. */
function multipart(
  parts: { name: string; filename?: string; data: Uint8Array | string }[],
  boundary = "XyZ",
) {
  const chunks: Uint8Array[] = [];
  for (const p of parts) {
    const file = p.filename === undefined ? "" : `; filename="${p.filename}"`;
    chunks.push(
      enc.encode(`--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${file}\r\n\r\n`),
    );
    chunks.push(typeof p.data === "string" ? enc.encode(p.data) : p.data, enc.encode("\r\n"));
  }
  chunks.push(enc.encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  chunks.reduce((at, c) => (body.set(c, at), at + c.length), 0);
  return { body, headers: { "content-type": `multipart/form-data; boundary=${boundary}` } };
}

/** `bytes` as a stream of `size`-byte chunks (no Content-Length: the server must count). */
function chunked(bytes: Uint8Array, size: number): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(controller) {
      if (at >= bytes.length) return controller.close();
      controller.enqueue(bytes.slice(at, at += size));
    },
  });
}

async function expectError(res: Response, status: number, code: string) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, JSON.stringify(body));
  return body.error;
}

Deno.test("a multipart upload streams to disk in any field order and chunking, boundary split across chunks", async () => {
  await withApp(undefined, async (s) => {
    const zip = zipSync(await dataset());
    const config = JSON.stringify({ epochs: 3 });
    const form = multipart([{ name: "dataset", filename: "d.zip", data: zip }, {
      name: "config",
      data: config,
    }]);
    for (const chunk of [1, 7, 64, 1 << 16]) {
      const res = await s.post(chunked(form.body, chunk), form.headers);
      const job = await res.json();
      assert.equal(res.status, 202, `chunks of ${chunk}: ${JSON.stringify(job)}`);
      assert.equal(job.config.epochs, 3, "the config after the dataset is read");
      assert.equal(job.dataset.files, 2);
    }
    assert.deepEqual(await s.leftovers(), [], "the staged upload is removed once the job is stored");
  });
});

Deno.test("a streamed multipart upload: over the cap 413, malformed 400, no dataset 422; nothing left behind", async () => {
  await withApp(undefined, async (s) => {
    const big = multipart([{ name: "dataset", filename: "d.zip", data: new Uint8Array(MAX_DATASET_BYTES) }]);
    await expectError(await s.post(chunked(big.body, 1 << 14), big.headers), 413, "payload_too_large");
    const zip = zipSync(await dataset());
    const good = multipart([{ name: "dataset", filename: "d.zip", data: zip }]);
    const cut = good.body.subarray(0, good.body.length - 10);
    const message = (await expectError(await s.post(cut, good.headers), 400, "invalid_body")).message;
    assert.match(message, /ended before the closing boundary/);
    const twice = multipart([{ name: "dataset", data: zip }, { name: "dataset", data: zip }]);
    await expectError(await s.post(twice.body, twice.headers), 400, "invalid_body");
    const noBoundary = { "content-type": "multipart/form-data" };
    await expectError(await s.post(good.body, noBoundary), 400, "invalid_body");
    const configOnly = multipart([{ name: "config", data: "{}" }]);
    await expectError(await s.post(configOnly.body, configOnly.headers), 422, "invalid_body");
    assert.deepEqual(s.jobs.list(), []);
    assert.deepEqual(await s.leftovers(), []);
  });
});

Deno.test("entries the file system refuses (a path through a file) answer 400 invalid_dataset, not 500", async () => {
  await withApp(undefined, async (s) => {
    const files = await dataset();
    const tar = makeTar([
      ...Object.entries(files).map(([name, data]) => ({ name, data })),
      { name: "images/a.png/x.txt", data: enc.encode("under a file") },
    ]);
    const form = multipart([{ name: "dataset", filename: "d.tar", data: tar }]);
    const error = await expectError(await s.post(form.body, form.headers), 400, "invalid_dataset");
    assert.deepEqual(error.problems.map((p: { file: string }) => p.file), ["images/a.png/x.txt"]);
    assert.deepEqual(s.jobs.list(), []);
    assert.deepEqual(await s.leftovers(), []);
  });
});

Deno.test("dataset validation honours --max-pixels: an image over it is a dataset problem", async () => {
  const files = await dataset();
  const form = multipart([{ name: "dataset", filename: "d.zip", data: zipSync(files) }]);
  await withApp(WIDTH * HEIGHT - 1, async (s) => {
    const error = await expectError(await s.post(form.body, form.headers), 400, "invalid_dataset");
    assert.deepEqual(error.problems.map((p: { file: string }) => p.file), ["images/a.png"]);
    assert.match(error.message, new RegExp(`over the limit of ${WIDTH * HEIGHT - 1}`));
  });
  await withApp(WIDTH * HEIGHT, async (s) => {
    assert.equal(
      (await s.post(form.body, form.headers)).status,
      202,
      "an image of exactly the limit is fine",
    );
  });
});
