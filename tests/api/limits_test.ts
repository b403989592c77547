// Finding 8 of issue 12 (unauthenticated exhaustion) and the absolute --model path in version listings. Each
// case below failed before the fix: downloads read and hashed the whole file, detect had no ceiling and took
// the model lease before reading the body, event streams were unbounded, and /metrics made a series per method.
import assert from "node:assert/strict";
import sharp from "sharp";
import { FsStore } from "../../src/registry/fs_store.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { sha256 } from "../../src/registry/registry.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { expectError, openTestApp, type TestApp } from "./_app_setup.ts";

const test = (name: string, fn: () => Promise<void>) => Deno.test({ name, fn, sanitizeResources: false });

async function withApp(
  fn: (s: TestApp) => Promise<void>,
  deps: Parameters<typeof openTestApp>[0] = {},
  store?: MemoryStore | FsStore,
) {
  const s = await openTestApp(deps, store);
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

const png = async () =>
  new Uint8Array(
    await sharp({ create: { width: 40, height: 30, channels: 3, background: { r: 90, g: 140, b: 60 } } })
      .png().toBuffer(),
  );

/**
 * A request body that sends its first half, then waits for `finish()` before the rest. Sent with its
 * Content-Length, as a slow client would: the body-limit middleware then passes it on unread.
 */
function stalledBody(bytes: Uint8Array) {
  const started = Promise.withResolvers<void>();
  const gate = Promise.withResolvers<void>();
  let sent = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (sent === 0) {
        sent = 1;
        controller.enqueue(bytes.slice(0, bytes.length >> 1));
        started.resolve();
        return;
      }
      await gate.promise;
      controller.enqueue(bytes.slice(bytes.length >> 1));
      controller.close();
    },
  });
  const headers = { "content-type": "image/png", "content-length": String(bytes.length) };
  return { body, headers, started: started.promise, finish: () => gate.resolve() };
}

/** Lets the event loop run other callbacks (the app's handlers) a few times. */
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setTimeout(r, 0));
};

test("a version download streams the stored file with the sha256 recorded at write time, reading no whole copy", async () => {
  class CountingStore extends MemoryStore {
    reads = 0;
    override readModel(name: string, version: number) {
      this.reads++;
      return super.readModel(name, version);
    }
  }
  const store = new CountingStore();
  await withApp(
    async (s) => {
      const bytes = tinyYolo({ seed: 5 });
      await s.registry.add("tiny", bytes, { source: { type: "upload" }, activate: false });
      const before = store.reads;
      const res = await s.call("/v1/models/tiny/versions/2.onnx");
      assert.equal(res.status, 200);
      assert.deepEqual(new Uint8Array(await res.arrayBuffer()), bytes);
      assert.equal(res.headers.get("x-model-sha256"), await sha256(bytes));
      assert.equal(store.reads, before, "the download went through the stream, not readModel");
      await expectError(s.call("/v1/models/tiny/versions/9.onnx"), 404, "not_found");
    },
    {},
    store,
  );
});

test("detect beyond --max-inflight-detect gets 429 overloaded with Retry-After, and the first still answers", async () => {
  await withApp(async (s) => {
    const image = await png();
    const slow = stalledBody(image);
    const first = s.call("/v1/models/tiny/detect", {
      method: "POST",
      body: slow.body,
      headers: slow.headers,
    });
    await slow.started;
    const second = await s.call("/v1/models/tiny/detect", {
      method: "POST",
      body: image,
      headers: { "content-type": "image/png" },
    });
    assert.equal(second.headers.get("retry-after"), "1");
    await expectError(second, 429, "overloaded");
    slow.finish();
    const done = await first;
    assert.equal(done.status, 200, await done.clone().text());
    assert.deepEqual((await done.json()).model, { name: "tiny", version: 1 });
    const after = await s.call("/v1/models/tiny/detect", {
      method: "POST",
      body: image,
      headers: { "content-type": "image/png" },
    });
    assert.equal(after.status, 200, "the slot was given back");
  }, { maxInflightDetect: 1 });
});

test("detect takes the model lease only once the body is read: a stalled upload pins no model", async () => {
  await withApp(async (s) => {
    // The handler looks the model up (get) or leases it as soon as it runs: wait for either, then look.
    const reached = Promise.withResolvers<void>();
    let leases = 0;
    const { get, lease } = { get: s.pool.get.bind(s.pool), lease: s.pool.lease.bind(s.pool) };
    s.pool.get = (name) => {
      reached.resolve();
      return get(name);
    };
    s.pool.lease = (name) => {
      leases++;
      reached.resolve();
      return lease(name);
    };
    const slow = stalledBody(await png());
    const pending = s.call("/v1/models/tiny/detect", {
      method: "POST",
      body: slow.body,
      headers: slow.headers,
    });
    await reached.promise;
    await settle();
    assert.equal(leases, 0, "no lease while the body is still arriving");
    slow.finish();
    assert.equal((await pending).status, 200);
    assert.equal(leases, 1);
  });
});

test("job event streams beyond --max-event-streams get 429; a closed stream gives its slot back", async () => {
  await withApp(async (s) => {
    const hold = s.trainer.holdAt(0);
    const image = (await png()).toBase64();
    const submitted = await s.call("/v1/models/tiny/finetune", {
      method: "POST",
      body: JSON.stringify({
        config: { epochs: 1 },
        images: [{ name: "a.png", data: image, labels: [[0, 0.5, 0.5, 0.2, 0.2]] }],
      }),
      headers: { "content-type": "application/json" },
    });
    assert.equal(submitted.status, 202, await submitted.clone().text());
    const { id } = await submitted.json();
    await hold.reached;
    const open = await s.call(`/v1/jobs/${id}/events`);
    assert.equal(open.status, 200);
    const reader = open.body!.getReader();
    assert.ok(!(await reader.read()).done, "the first stream sends the job's state");
    const refused = await s.call(`/v1/jobs/${id}/events`);
    assert.equal(refused.headers.get("retry-after"), "1");
    await expectError(refused, 429, "overloaded");
    await reader.cancel();
    await settle();
    const again = await s.call(`/v1/jobs/${id}/events`);
    assert.equal(again.status, 200);
    await again.body!.cancel();
    hold.release();
  }, { maxEventStreams: 1 });
});

test("/metrics labels junk methods as `other` and unknown paths by a fixed route, so clients add no series", async () => {
  await withApp(async (s) => {
    for (let i = 0; i < 50; i++) {
      await (await s.call(`/junk/${i}`, { method: `JUNK${i}` })).body?.cancel();
      await (await s.call(`/v1/nothing/${i}?q=${i}`)).body?.cancel();
    }
    const refused = await s.call("/v1/models/tiny", {
      method: "POST",
      headers: { origin: "https://evil.example" },
    });
    assert.equal(refused.status, 403);
    const text = await (await s.call("/metrics")).text();
    assert.match(
      text,
      /kestrel_http_requests_total\{method="POST",route="\/v1\/models\/:name",status="403"\} 1/,
    );
    assert.match(text, /kestrel_http_requests_total\{method="GET",route="unmatched",status="404"\} 50/);
    const series = text.split("\n").filter((l) => l.startsWith("kestrel_http_requests_total{"));
    assert.ok(!series.some((l) => /JUNK/.test(l)), series.join("\n"));
    assert.ok(series.some((l) => l.includes('method="other"')), series.join("\n"));
    const methods = new Set(series.map((l) => /method="([^"]*)"/.exec(l)![1]));
    const routes = new Set(series.map((l) => /route="([^"]*)"/.exec(l)![1]));
    assert.ok(methods.size <= 8, [...methods].join(","));
    assert.ok(![...routes].some((r) => /junk|nothing/.test(r)), `raw paths in route labels: ${[...routes]}`);
  });
});

test("version listings show a --model startup version by file name, never the absolute path", async () => {
  await withApp(async (s) => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-secret-dir-" });
    try {
      const path = `${dir}/best.onnx`;
      await Deno.writeFile(path, tinyYolo({ seed: 9 }));
      await s.registry.registerFile(path);
      for (const url of ["/v1/models/best/versions", "/v1/models/best"]) {
        const res = await s.call(url);
        const text = await res.text();
        assert.equal(res.status, 200, text);
        assert.ok(!text.includes(dir), `${url} shows ${dir}: ${text}`);
        assert.deepEqual(JSON.parse(text).versions[0].source, { type: "startup", path: "best.onnx" });
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
});
