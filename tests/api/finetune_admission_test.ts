// The fine-tune route's admission limits: concurrent uploads and queued jobs answer 429 with Retry-After, a data
// dir below its free-space floor 507, each in the JSON error shape and before anything is stored.
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import sharp from "sharp";
import { createApp } from "../../src/api/app.ts";
import { parseServerArgs } from "../../src/config/server.ts";
import {
  DEFAULT_JOB_LIMITS,
  freeBytes,
  type JobLimits,
  QUEUE_RETRY_AFTER_SECONDS,
  UPLOAD_RETRY_AFTER_SECONDS,
} from "../../src/jobs/limits.ts";
import { JobService } from "../../src/jobs/service.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };

async function dataset(): Promise<Uint8Array<ArrayBuffer>> {
  const png = await sharp({
    create: { width: 32, height: 24, channels: 3, background: { r: 9, g: 9, b: 9 } },
  })
    .png().toBuffer();
  const label = new TextEncoder().encode("0 0.5 0.5 0.25 0.25\n");
  return zipSync({ "images/a.png": new Uint8Array(png), "labels/a.txt": label }) as Uint8Array<ArrayBuffer>;
}

/** The multipart body of a fine-tune upload, as bytes, with its content type. */
async function multipartBody(): Promise<{ body: Uint8Array<ArrayBuffer>; type: string }> {
  const form = new FormData();
  form.append("config", JSON.stringify({ epochs: 1 }));
  form.append("dataset", new File([await dataset()], "data.zip"));
  const res = new Response(form);
  return { body: new Uint8Array(await res.arrayBuffer()), type: res.headers.get("content-type")! };
}

async function withApp(
  limits: Partial<JobLimits>,
  fn: (s: {
    dataDir: string;
    trainer: TestTrainer;
    jobs: JobService;
    /** the multipart body `upload` sends by default (its boundary is in the content type upload sets) */
    body: Uint8Array<ArrayBuffer>;
    upload: (body?: BodyInit) => Promise<Response>;
  }) => Promise<void>,
) {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-limits-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 1 << 20 });
  registry.setActivator((meta, bytes) => pool.swap(meta.name, meta.version, bytes).then(() => {}));
  await registry.add("tiny", tinyYolo(), { source: { type: "upload" }, activate: true });
  const trainer = new TestTrainer();
  const jobs = await JobService.open({ dataDir, trainer, log: () => {}, limits });
  const app = createApp({ pool, registry, jobs });
  const { body, type } = await multipartBody();
  const upload = (stream: BodyInit = body) =>
    Promise.resolve(app.request("/v1/models/tiny/finetune", {
      method: "POST",
      body: stream,
      headers: { "content-type": type },
    }, LOOPBACK));
  try {
    await fn({ dataDir, trainer, jobs, body, upload });
  } finally {
    await jobs.close();
    await pool.close();
    await Deno.remove(dataDir, { recursive: true });
  }
}

async function assertRefused(res: Response, status: number, code: string, retryAfter: number | null) {
  const body = await res.json();
  assert.equal(res.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code);
  assert.equal(typeof body.error.message, "string");
  assert.equal(res.headers.get("retry-after"), retryAfter === null ? null : String(retryAfter));
}

Deno.test("POST finetune past --max-concurrent-uploads answers 429 with Retry-After before reading the body", async () => {
  await withApp({ maxConcurrentUploads: 1 }, async ({ upload, body, jobs }) => {
    const reading = Promise.withResolvers<void>();
    const rest = Promise.withResolvers<void>();
    let chunks = 0;
    // An upload that is slow to arrive: half its body, then the rest once the test says so.
    const slow = new ReadableStream<Uint8Array>({
      async pull(controller) {
        if (chunks++ === 0) {
          reading.resolve();
          controller.enqueue(body.slice(0, body.length >> 1));
          return;
        }
        await rest.promise;
        controller.enqueue(body.slice(body.length >> 1));
        controller.close();
      },
    }, { highWaterMark: 0 }); // pulled only when read
    const first = upload(slow);
    await reading.promise;
    let pulled = false;
    const refused = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled = true;
        controller.enqueue(body);
        controller.close();
      },
    }, { highWaterMark: 0 });
    await assertRefused(await upload(refused), 429, "too_many_requests", UPLOAD_RETRY_AFTER_SECONDS);
    assert.equal(pulled, false, "the refused upload's body was not read");
    rest.resolve();
    const accepted = await first;
    assert.equal(accepted.status, 202, await accepted.text());
    const next = await upload();
    assert.equal(next.status, 202, "an accepted upload gives its slot back");
    await next.body?.cancel();
    assert.equal(jobs.list().length, 2);
  });
});

Deno.test("POST finetune past --max-queued-jobs answers 429 with Retry-After and stores nothing", async () => {
  await withApp({ maxQueuedJobs: 2 }, async ({ dataDir, upload, trainer, jobs }) => {
    const hold = trainer.holdAt(0);
    const accepted = [];
    for (let i = 0; i < 3; i++) {
      const res = await upload();
      assert.equal(res.status, 202);
      accepted.push((await res.json()).id);
    }
    await hold.reached; // one job runs, two wait: the queue is full
    await assertRefused(await upload(), 429, "too_many_requests", QUEUE_RETRY_AFTER_SECONDS);
    const stored = (await Array.fromAsync(Deno.readDir(join(dataDir, "jobs")))).map((e) => e.name);
    assert.deepEqual(stored.sort(), [...accepted].sort());
    await jobs.cancel(accepted[2]);
    const res = await upload();
    assert.equal(res.status, 202, "a cancelled job frees its place in the queue");
    await res.body?.cancel();
    hold.release();
  });
});

Deno.test("POST finetune with the data dir below --min-free-bytes answers 507 and stores nothing", async () => {
  const dir = await Deno.makeTempDir();
  // A floor a terabyte above what the disk has free now.
  const floor = await freeBytes(dir) + 2 ** 40;
  await Deno.remove(dir);
  await withApp({ minFreeBytes: floor }, async ({ dataDir, upload, jobs }) => {
    await assertRefused(await upload(), 507, "insufficient_storage", null);
    assert.deepEqual(await Array.fromAsync(Deno.readDir(join(dataDir, "jobs"))), []);
    assert.deepEqual(jobs.list(), []);
  });
});

Deno.test("serve flags --max-concurrent-uploads, --max-queued-jobs and --min-free-bytes, with their defaults", () => {
  const set = parseServerArgs([
    "--max-concurrent-uploads",
    "3",
    "--max-queued-jobs",
    "5",
    "--min-free-bytes",
    "1000",
  ]);
  assert.deepEqual([set.maxConcurrentUploads, set.maxQueuedJobs, set.minFreeBytes], [3, 5, 1000]);
  const defaults = parseServerArgs([]);
  assert.deepEqual(
    {
      maxConcurrentUploads: defaults.maxConcurrentUploads,
      maxQueuedJobs: defaults.maxQueuedJobs,
      minFreeBytes: defaults.minFreeBytes,
    },
    DEFAULT_JOB_LIMITS,
  );
  assert.throws(() => parseServerArgs(["--max-queued-jobs", "0"]), /maxQueuedJobs/);
});
