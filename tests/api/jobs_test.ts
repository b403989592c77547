import assert from "node:assert/strict";
import { join } from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { gzipSync, zipSync } from "fflate";
import sharp from "sharp";
import { OPENAPI_PATH } from "../../src/api/routes/docs.ts";
import { ITERATIONS_PER_EPOCH } from "../jobs/_test_trainer.ts";
import { makeTar } from "../train/data/_tar.ts";
import { expectError, MAX_DATASET_BYTES, NC, openTestApp, REMOTE } from "./_app_setup.ts";

const enc = new TextEncoder();

const png = async (seed = 0) =>
  new Uint8Array(
    await sharp({
      create: { width: 32, height: 24, channels: 3, background: { r: 40 + seed, g: 90, b: 160 } },
    })
      .png().toBuffer(),
  );

/** A YOLO-layout dataset as archive entries: `n` images each with one valid box, plus `extra` entries. */
async function files(n = 3, extra: Record<string, Uint8Array> = {}): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (let i = 0; i < n; i++) {
    out[`images/im${i}.png`] = await png(i);
    out[`labels/im${i}.txt`] = enc.encode(`${i % NC} 0.5 0.5 0.25 0.25\n`);
  }
  return { ...out, ...extra };
}

const zip = (entries: Record<string, Uint8Array>) => zipSync(entries) as Uint8Array<ArrayBuffer>;

async function setup(options: { apiKey?: string | null; sseKeepAliveMs?: number } = {}) {
  const t = await openTestApp(options);
  const { call } = t;
  const multipart = (
    dataset: Uint8Array<ArrayBuffer> | null,
    config: unknown = { epochs: 2 },
    name = "tiny",
    query = "",
  ) => {
    const form = new FormData();
    if (config !== undefined) {
      form.append("config", typeof config === "string" ? config : JSON.stringify(config));
    }
    if (dataset) form.append("dataset", new File([dataset], "data.zip"));
    return call(`/v1/models/${name}/finetune${query}`, { method: "POST", body: form });
  };
  const inline = (body: unknown, name = "tiny") =>
    call(`/v1/models/${name}/finetune`, {
      method: "POST",
      body: JSON.stringify(body),
      headers: { "content-type": "application/json" },
    });
  return { ...t, multipart, inline };
}

type Setup = Awaited<ReturnType<typeof setup>>;

async function withSetup(fn: (s: Setup) => Promise<void>, options: Parameters<typeof setup>[0] = {}) {
  const s = await setup(options);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const test = (name: string, fn: () => Promise<void>) => Deno.test({ name, fn, sanitizeResources: false });

/** A 400 invalid_dataset whose problems name exactly `expected` (file[:line]), and no job or staging left. */
async function expectDatasetProblems(s: Setup, res: Response | Promise<Response>, expected: string[]) {
  const answer = await expectError(res, 400, "invalid_dataset");
  const error = answer as typeof answer & { problems: { file: string; line?: number }[] };
  const named = error.problems.map((p: { file: string; line?: number }) =>
    p.line === undefined ? p.file : `${p.file}:${p.line}`
  );
  assert.deepEqual(named.sort(), [...expected].sort(), JSON.stringify(error.problems));
  for (const file of expected) {
    assert.ok(error.message.includes(file), `message names ${file}: ${error.message}`);
  }
  assert.deepEqual(s.jobs.list(), [], "a rejected upload queues nothing");
  const left = await Array.fromAsync(Deno.readDir(join(s.dataDir, "jobs"))).catch(() => []);
  assert.deepEqual(left, [], "a rejected upload leaves nothing on disk");
}

test("POST finetune (multipart zip) answers 202 with the queued job; GET /v1/jobs and /v1/jobs/{id} follow it to success", async () => {
  await withSetup(async (s) => {
    const hold = s.trainer.holdAt(0);
    const res = await s.multipart(zip(await files(3)), { epochs: 2, batch_size: 2 });
    const job = await res.json();
    assert.equal(res.status, 202, JSON.stringify(job));
    await hold.reached;
    const stored = await Array.fromAsync(Deno.readDir(join(s.dataDir, "jobs", job.id, "dataset", "labels")));
    assert.equal(stored.length, 3, "the unpacked labels are stored with the job");
    hold.release();
    assert.equal(res.headers.get("location"), `/v1/jobs/${job.id}`);
    assert.equal(job.model, "tiny");
    assert.equal(job.baseVersion, 1);
    assert.equal(job.status, "queued");
    assert.deepEqual([job.config.epochs, job.config.batch_size, job.config.imgsz], [2, 2, 640]);
    assert.equal(job.dataset.files, 6);

    const list = await (await s.call("/v1/jobs")).json();
    assert.deepEqual(list.jobs.map((j: { id: string }) => j.id), [job.id]);

    await s.jobs.idle();
    const done = await (await s.call(`/v1/jobs/${job.id}`)).json();
    assert.equal(done.status, "succeeded");
    const p = done.progress;
    assert.deepEqual([p.epoch, p.epochs, p.iteration, p.iterations], [1, 2, 2 * ITERATIONS_PER_EPOCH, 6]);
    assert.deepEqual(p.lossItems, [1 / 6, 2 / 6, 3 / 6], "the test trainer's last reported loss items");
    assert.deepEqual(p.lr, [0.01, 0.01, 0.01]);
    assert.equal(p.imagesPerSecond, 10);
    assert.deepEqual(p.metrics, { map50_95: 0.06 });
    assert.deepEqual([done.resultVersion, done.activated, done.error], [2, true, null]);
  });
});

test("POST finetune takes a .tar.gz and a JSON body of base64 images alike", async () => {
  await withSetup(async (s) => {
    const hold = s.trainer.holdAt(0); // the jobs keep their datasets (deleted when they end) until released
    const entries = await files(2);
    const tar = makeTar(Object.entries(entries).map(([name, data]) => ({ name: `set/${name}`, data })));
    const r1 = await s.multipart(gzipSync(tar) as Uint8Array<ArrayBuffer>);
    assert.equal(r1.status, 202, await r1.clone().text());
    assert.equal((await r1.json()).dataset.files, 4);

    const images = [0, 1, 2].map(async (i) => ({
      name: `im${i}.png`,
      data: (await png(i)).toBase64(),
      labels: [[1, 0.5, 0.5, 0.2, 0.3], [0, 0.25, 0.25, 0.1, 0.1]],
    }));
    const r2 = await s.inline({ config: { epochs: 1 }, images: await Promise.all(images) });
    const job = await r2.json();
    assert.equal(r2.status, 202, JSON.stringify(job));
    assert.deepEqual([job.config.epochs, job.dataset.files], [1, 6]);
    const label = join(s.dataDir, "jobs", job.id, "dataset", "labels", "im0.txt");
    assert.equal(await Deno.readTextFile(label), "1 0.5 0.5 0.2 0.3\n0 0.25 0.25 0.1 0.1\n");
    hold.release();
  });
});

test("POST finetune rejects bad datasets with 400 listing every offending file, before queueing anything", async () => {
  await withSetup(async (s) => {
    await expectDatasetProblems(s, s.multipart(new Uint8Array([1, 2, 3, 4])), ["archive"]);
    const truncated = zip(await files(2)).slice(0, 300);
    await expectDatasetProblems(s, s.multipart(truncated), ["archive"]);
    await expectDatasetProblems(s, s.multipart(zip({})), ["."]);
    await expectDatasetProblems(s, s.inline({ images: [] }), ["."]);

    const bad = await files(2, {
      "images/broken.jpg": enc.encode("not a jpeg"),
      "labels/broken.txt": enc.encode("0 0.5 0.5 0.1 0.1\n"),
      "images/short.png": await png(7),
      "labels/short.txt": enc.encode("0 0.5 0.5 0.1 0.1\n0 0.5 0.5\n"),
      "images/cls.png": await png(8),
      "labels/cls.txt": enc.encode(`${NC} 0.5 0.5 0.1 0.1\n`),
      "images/coord.png": await png(9),
      "labels/coord.txt": enc.encode("0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1 0.1\n1 1.5 0.5 0.1 0.1\n"),
    });
    await expectDatasetProblems(s, s.multipart(zip(bad)), [
      "images/broken.jpg",
      "labels/short.txt:2",
      "labels/cls.txt:1",
      "labels/coord.txt:3",
    ]);

    const images = [
      { name: "ok.png", data: (await png()).toBase64(), labels: [[0, 0.5, 0.5, 0.1, 0.1]] },
      { name: "garbage.png", data: "%%%", labels: [] },
      { name: "row.png", data: (await png()).toBase64(), labels: [[0, 0.5, 0.5]] },
    ];
    await expectDatasetProblems(s, s.inline({ images }), [
      "images[1] (garbage.png)",
      "images[2] (row.png):1",
    ]);
    const outside = [{ name: "far.png", data: (await png()).toBase64(), labels: [[0, -0.2, 0.5, 0.1, 0.1]] }];
    await expectDatasetProblems(s, s.inline({ images: outside }), ["labels/far.txt:1"]);
  });
});

test("POST finetune: unknown model or version 404, bad config 400, wrong body 415/422, oversized 413", async () => {
  await withSetup(async (s) => {
    const dataset = zip(await files(1));
    await expectError(s.multipart(dataset, {}, "nope"), 404, "model_not_found");
    await expectError(s.multipart(dataset, {}, "tiny", "?base_version=9"), 404, "model_not_found");
    const cfg = await expectError(s.multipart(dataset, { epochs: 0, epoch: 3 }), 400, "invalid_config");
    assert.match(cfg.message, /epochs/);
    assert.match(cfg.message, /epoch\b/);
    await expectError(s.multipart(dataset, "{not json"), 400, "invalid_config");
    await expectError(s.inline({ config: { optimizer: "Lion" }, images: [] }), 400, "invalid_config");
    await expectError(
      s.call("/v1/models/tiny/finetune", {
        method: "POST",
        body: dataset,
        headers: { "content-type": "application/zip" },
      }),
      415,
      "unsupported_media_type",
    );
    await expectError(s.multipart(null), 422, "invalid_body");
    await expectError(s.inline({ config: {} }), 422, "invalid_body");
    await expectError(s.multipart(new Uint8Array(MAX_DATASET_BYTES + 1)), 413, "payload_too_large");
    assert.deepEqual(s.jobs.list(), []);
  });
});

test("fine-tune and cancel need the API key when one is set, and loopback when none is", async () => {
  const dataset = zip(await files(1));
  const form = () => {
    const f = new FormData();
    f.append("dataset", new File([dataset], "d.zip"));
    return f;
  };
  await withSetup(async (s) => {
    await expectError(
      s.call("/v1/models/tiny/finetune", { method: "POST", body: form() }, REMOTE),
      403,
      "forbidden",
    );
    await expectError(s.call("/v1/jobs/x", { method: "DELETE" }, REMOTE), 403, "forbidden");
    assert.equal((await s.call("/v1/jobs", {}, REMOTE)).status, 200, "reading jobs needs no key");
  });
  await withSetup(async (s) => {
    const post = (headers: HeadersInit) =>
      s.call("/v1/models/tiny/finetune", { method: "POST", body: form(), headers }, REMOTE);
    await expectError(post({}), 401, "unauthorized");
    await expectError(post({ authorization: "Bearer wrong" }), 401, "unauthorized");
    const ok = await post({ authorization: "Bearer sesame" });
    assert.equal(ok.status, 202);
    const { id } = await ok.json();
    await s.jobs.idle();
    await expectError(s.call(`/v1/jobs/${id}`, { method: "DELETE" }, REMOTE), 401, "unauthorized");
  }, { apiKey: "sesame" });
});

test("DELETE /v1/jobs/{id}: a queued job 200 cancelled, a running one 202 then cancelled, a finished one 409", async () => {
  await withSetup(async (s) => {
    const hold = s.trainer.holdAt(1);
    const first = await (await s.multipart(zip(await files(1)))).json();
    const second = await (await s.multipart(zip(await files(1)))).json();
    await hold.reached;
    assert.equal(s.jobs.get(second.id).status, "queued", "one job at a time per adapter");

    const queued = await s.call(`/v1/jobs/${second.id}`, { method: "DELETE" });
    assert.equal(queued.status, 200);
    assert.equal((await queued.json()).status, "cancelled");

    const running = await s.call(`/v1/jobs/${first.id}`, { method: "DELETE" });
    assert.equal(running.status, 202);
    assert.equal((await running.json()).status, "running");
    await s.jobs.idle();
    const after = await (await s.call(`/v1/jobs/${first.id}`)).json();
    assert.equal(after.status, "cancelled");
    assert.equal(after.progress.iteration, 1, "stopped between iterations, where it was held");

    await expectError(s.call(`/v1/jobs/${first.id}`, { method: "DELETE" }), 409, "conflict");
    await expectError(s.call("/v1/jobs/no-such-job", { method: "DELETE" }), 404, "job_not_found");
    await expectError(s.call("/v1/jobs/no-such-job"), 404, "job_not_found");
    await expectError(s.call("/v1/jobs/no-such-job/events"), 404, "job_not_found");

    const cancelled = await (await s.call("/v1/jobs?status=cancelled&model=tiny")).json();
    assert.deepEqual(cancelled.jobs.map((j: { id: string }) => j.id).sort(), [first.id, second.id].sort());
    assert.deepEqual((await (await s.call("/v1/jobs?model=other")).json()).jobs, []);
    await expectError(s.call("/v1/jobs?status=paused"), 400, "invalid_request");
  });
});

/** Parses a text/event-stream text into its events; comment lines (`: ...`) are dropped, as EventSource does. */
function parseEvents(text: string): { event: string; id: string; data: string }[] {
  const blocks = text.split("\n\n").map((block) => block.split("\n").filter((l) => !l.startsWith(":")));
  return blocks.filter((lines) => lines.join("").trim()).map((lines) => {
    const field = (name: string) =>
      lines.filter((l) => l.startsWith(`${name}:`)).map((l) => l.slice(name.length + 1).trim()).join("\n");
    return { event: field("event"), id: field("id"), data: field("data") };
  });
}

const readEvents = async (res: Response) => parseEvents(await res.text());

test("GET /v1/jobs/{id}/events streams the current state, every progress report, and ends after success", async () => {
  await withSetup(async (s) => {
    const hold = s.trainer.holdAt(0);
    const job = await (await s.multipart(zip(await files(1)), { epochs: 2 })).json();
    await hold.reached;
    const res = await s.call(`/v1/jobs/${job.id}/events`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
    const events = readEvents(res);
    // Progress is collapsed only for a reader that lags; let this one keep up with each report.
    hold.release();
    const got = await events;
    const parsed = got.map((e) => ({ ...e, body: JSON.parse(e.data) }));
    assert.deepEqual(parsed.map((e) => e.id), parsed.map((_, i) => String(i)));
    assert.ok(parsed.every((e) => e.event === e.body.type && e.body.job.id === job.id));
    assert.equal(parsed[0].body.job.status, "running", "starts with the current state");
    assert.equal(parsed.at(-1)!.event, "status");
    assert.equal(parsed.at(-1)!.body.job.status, "succeeded", "ends after the final status");
    const iterations = parsed.filter((e) => e.event === "progress").map((e) => e.body.job.progress.iteration);
    assert.ok(iterations.length >= 1 && iterations.at(-1) === 2 * ITERATIONS_PER_EPOCH, `${iterations}`);
    assert.deepEqual(iterations, [...iterations].sort((a, b) => a - b), "progress only moves forward");

    const finished = await readEvents(await s.call(`/v1/jobs/${job.id}/events`));
    assert.equal(finished.length, 1, "a finished job's stream is its final state");
    assert.equal(JSON.parse(finished[0].data).job.status, "succeeded");
  });
});

test("an open event stream ends when the server shuts down", async () => {
  const s = await setup();
  const hold = s.trainer.holdAt(0);
  const job = await (await s.multipart(zip(await files(1)))).json();
  await hold.reached;
  const events = readEvents(await s.call(`/v1/jobs/${job.id}/events`));
  await s.close();
  const got = await events;
  assert.equal(JSON.parse(got.at(-1)!.data).job.status, "running", "the job was left to resume at restart");
});

/** Short enough that a keep-alive falls between two events of a held job many times over. */
const KEEP_ALIVE_MS = 5;

test("an event stream gets a keep-alive comment line while the job is silent, between intact events", async () => {
  await withSetup(async (s) => {
    const hold = s.trainer.holdAt(0);
    const job = await (await s.multipart(zip(await files(1)), { epochs: 1 })).json();
    await hold.reached;
    const reader = (await s.call(`/v1/jobs/${job.id}/events`)).body!.pipeThrough(new TextDecoderStream())
      .getReader();
    let text = "";
    // The job is held, so nothing but the initial state and keep-alives can arrive. The deadline only turns
    // a missing keep-alive into a failure instead of a hang: it is 2000 intervals, not a speed check.
    const deadline = setTimeout(() => reader.cancel(), 2000 * KEEP_ALIVE_MS);
    while (!text.includes(": keep-alive\n\n")) {
      const { value, done } = await reader.read();
      assert.ok(!done, `the stream ended before any keep-alive: ${JSON.stringify(text)}`);
      text += value;
    }
    clearTimeout(deadline);
    hold.release();
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += r.value;

    const comments = text.split("\n").filter((l) => l.startsWith(":"));
    assert.ok(comments.length >= 1 && comments.every((l) => l === ": keep-alive"), JSON.stringify(comments));
    const blocks = text.split("\n\n").filter((b) => b.includes(":"));
    assert.ok(
      blocks.every((b) => b === ": keep-alive" || !b.split("\n").some((l) => l.startsWith(":"))),
      "a keep-alive is a block of its own, never inside an event",
    );
    const events = parseEvents(text).map((e) => JSON.parse(e.data));
    assert.deepEqual(events.map((e) => e.job.id), events.map(() => job.id));
    assert.equal(events[0].job.status, "running", "starts with the current state");
    assert.equal(events.at(-1).job.status, "succeeded", "ends after the final status");
  }, { sseKeepAliveMs: KEEP_ALIVE_MS });
});

test("POST finetune once the job service is shutting down answers 503 unavailable and queues nothing", async () => {
  await withSetup(async (s) => {
    await s.jobs.close();
    await expectError(s.multipart(zip(await files(1))), 503, "unavailable");
    assert.deepEqual(s.jobs.list(), []);
  });
});

test("/openapi.json with the job routes mounted is valid OpenAPI 3.1 and documents every job route", async () => {
  await withSetup(async (s) => {
    const doc = await (await s.app.request(OPENAPI_PATH)).json();
    assert.deepEqual(await new Validator().validate(doc), { valid: true });
    const ops = Object.entries(doc.paths as Record<string, object>).flatMap(([p, o]) =>
      Object.keys(o).map((m) => `${m} ${p}`)
    );
    for (
      const route of [
        "post /v1/models/{name}/finetune",
        "get /v1/jobs",
        "get /v1/jobs/{id}",
        "get /v1/jobs/{id}/events",
        "delete /v1/jobs/{id}",
      ]
    ) assert.ok(ops.includes(route), `${route} is documented`);
    const finetune = doc.paths["/v1/models/{name}/finetune"].post;
    assert.deepEqual(Object.keys(finetune.requestBody.content).sort(), [
      "application/json",
      "multipart/form-data",
    ]);
    assert.ok(doc.components.schemas.Job, "the job record is a named schema");
  });
});
