// The capture subsystem without HTTP: policy decisions, the store's crash recovery, order and eviction, the
// queue's bound, the hourly limit, and labels (validation, stable split, YOLO rows).
import assert from "node:assert/strict";
import { join } from "node:path";
import { withReplay, writeCaptureDataset } from "../../src/capture/dataset.ts";
import { defaultSplit, labelProblems, VAL_ONE_IN, yoloLabelText } from "../../src/capture/labels.ts";
import { AGREEMENT_IOU, CapturePolicySchema, disagree, keeps } from "../../src/capture/policy.ts";
import { CaptureService } from "../../src/capture/service.ts";
import { CaptureStore } from "../../src/capture/store.ts";
import type { CaptureMeta, NewCapture } from "../../src/capture/types.ts";

const policy = (raw: object) => CapturePolicySchema.parse(raw);
const det = (class_id: number, confidence: number) => ({ class_id, confidence });
const log = () => {};
/** A 1x1 PNG: the store and service read only its header. */
const PNG = Uint8Array.fromBase64(
  "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==",
);

function frame(model: string, bytes = 100, time = new Date()): NewCapture {
  return {
    model,
    version: 1,
    image: new Uint8Array(bytes),
    format: "png",
    width: 64,
    height: 48,
    predictions: [],
    source: { route: "native", client: null, camera: null },
    time,
  };
}

async function withDir(fn: (dir: string) => Promise<void>) {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-capture-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("policy: off keeps nothing, all everything, uncertain only a detection in [low, high)", () => {
  const band = policy({ mode: "uncertain", uncertain: { low: 0.3, high: 0.6 } });
  assert.equal(keeps(policy({}), [det(0, 0.5)], 0), false, "the default is off");
  assert.equal(keeps(policy({ mode: "all" }), [], 0.99), true);
  assert.equal(keeps(band, [det(0, 0.3)], 0), true, "low is inside the band");
  assert.equal(keeps(band, [det(0, 0.6)], 0), false, "high is outside the band");
  assert.equal(keeps(band, [det(0, 0.29), det(1, 0.9)], 0), false);
  assert.equal(keeps(band, [], 0), false);
});

Deno.test("policy: sample keeps draws under rate; classes narrows every mode", () => {
  const sample = policy({ mode: "sample", rate: 0.25 });
  assert.equal(keeps(sample, [], 0.2499), true);
  assert.equal(keeps(sample, [], 0.25), false);
  const cats = policy({ mode: "uncertain", classes: [2] });
  assert.equal(keeps(cats, [det(0, 0.4)], 0), false, "in the band but not a wanted class");
  assert.equal(keeps(cats, [det(0, 0.4), det(2, 0.9)], 0), false, "the wanted class is not uncertain");
  assert.equal(keeps(cats, [det(2, 0.4)], 0), true);
  assert.equal(keeps(policy({ mode: "all", classes: [1] }), [det(0, 0.9)], 0), false);
});

Deno.test("disagree: a detection of either side with no same-class match at IoU >= 0.5", () => {
  const box = (class_id: number, x1: number, x2: number) => ({ class_id, box: { x1, y1: 0, x2, y2: 10 } });
  // [0,10] against [0,w]: IoU w/10, so w = 10·AGREEMENT_IOU is the edge.
  const edge = 10 * AGREEMENT_IOU;
  assert.equal(disagree([box(0, 0, 10)], [box(0, 0, edge)], null), false, "IoU at the threshold matches");
  assert.equal(disagree([box(0, 0, 10)], [box(0, 0, edge - 0.01)], null), true);
  assert.equal(disagree([box(0, 0, 10)], [box(1, 0, 10)], null), true, "another class is no match");
  assert.equal(disagree([], [box(0, 0, 10)], null), true, "the other side found something");
  assert.equal(disagree([], [], null), false);
  assert.equal(disagree([box(0, 0, 10)], [], [1]), false, "classes narrows which detections count");
});

Deno.test("policy schema refuses a band with low >= high and unknown keys", () => {
  assert.throws(() => policy({ mode: "uncertain", uncertain: { low: 0.6, high: 0.6 } }));
  assert.throws(() => policy({ mode: "all", max_byte: 5 }));
  assert.throws(() => policy({ mode: "sometimes" }));
});

Deno.test("store: newest first with a cursor; survives reopen; a crash's leftovers are removed", async () => {
  await withDir(async (dir) => {
    const store = await CaptureStore.open(dir, log);
    const t = new Date("2026-01-01T00:00:00Z");
    const ids: string[] = [];
    // Several in the same millisecond: ids still increase.
    for (let i = 0; i < 5; i++) ids.push((await store.add(frame("m", 10, t), 1e9)).stored!.id);
    assert.deepEqual([...ids].sort(), ids, "ids sort by capture order");
    const first = store.list({ model: "m" }, 2);
    assert.deepEqual(first.captures.map((c) => c.id), [ids[4], ids[3]]);
    const second = store.list({ model: "m" }, 2, first.next_cursor!);
    assert.deepEqual(second.captures.map((c) => c.id), [ids[2], ids[1]]);
    const last = store.list({ model: "m" }, 2, second.next_cursor!);
    assert.deepEqual([last.captures.map((c) => c.id), last.next_cursor], [[ids[0]], null]);

    // An image whose meta never got written, and a temp file: what a crash mid-add leaves.
    await Deno.writeFile(join(dir, "zzzzzzzzz-000-abcdef.img"), new Uint8Array(3));
    await Deno.writeFile(join(dir, `${ids[0]}.json.tmp-1234`), new Uint8Array(3));
    // A meta that does not parse (a disk fault): reported, its image kept for a person to look at.
    await Deno.writeTextFile(join(dir, "zzzzzzzzz-001-abcdef.json"), "{");
    await Deno.writeFile(join(dir, "zzzzzzzzz-001-abcdef.img"), new Uint8Array(3));
    const reported: string[] = [];
    const reopened = await CaptureStore.open(dir, (m) => reported.push(m));
    assert.equal(reported.length, 1);
    assert.ok((await Deno.stat(join(dir, "zzzzzzzzz-001-abcdef.img"))).isFile, "its image is kept");
    await Deno.remove(join(dir, "zzzzzzzzz-001-abcdef.json"));
    await Deno.remove(join(dir, "zzzzzzzzz-001-abcdef.img"));
    assert.deepEqual(reopened.list({}, 10).captures.map((c) => c.id), [...ids].reverse());
    assert.equal(reopened.bytes("m"), 50);
    const files = [];
    for await (const e of Deno.readDir(dir)) files.push(e.name);
    assert.equal(files.length, 10, `only the 5 captures' pairs are left: ${files}`);
    const next = (await reopened.add(frame("m", 10, t), 1e9)).stored!;
    assert.ok(next.id > ids[4], "ids keep increasing after a reopen");
  });
});

Deno.test("store: max_bytes evicts the oldest new captures, then rejected ones, never labelled ones", async () => {
  await withDir(async (dir) => {
    const store = await CaptureStore.open(dir, log);
    const add = async () => (await store.add(frame("m", 100), 300)).stored!;
    const [a, b, c] = [await add(), await add(), await add()];
    await store.update(a.id, (m) => ({ ...m, status: "labelled", labels: [], split: "train" }));
    await store.update(b.id, (m) => ({ ...m, status: "rejected" }));
    const other = (await store.add(frame("other", 100), 300)).stored!;

    const d = await store.add(frame("m", 100), 300);
    assert.deepEqual(d.stored && d.evicted, 1);
    assert.equal(store.get(c.id), undefined, "the oldest new capture went first");
    assert.ok(store.get(b.id), "the rejected one stays while a new one can go");
    await store.update(d.stored!.id, (m) => ({ ...m, status: "rejected" }));
    const e = await store.add(frame("m", 100), 300);
    assert.ok(e.stored);
    assert.equal(store.get(b.id), undefined, "with no new capture left, the oldest rejected one goes");
    assert.deepEqual(store.list({ model: "m" }, 10).captures.map((x) => x.status), [
      "new",
      "rejected",
      "labelled",
    ]);
    // Only labelled captures left: the frame is refused rather than one of them evicted.
    for (const id of [d.stored!.id, e.stored!.id]) {
      await store.update(id, (m) => ({ ...m, status: "labelled", labels: [], split: "val" }));
    }
    assert.deepEqual(await store.add(frame("m", 100), 300), { stored: null, reason: "over_budget" });
    assert.equal(store.all({ model: "m", status: "labelled" }).length, 3, "every labelled capture is kept");
    assert.ok(store.get(other.id), "another model's captures are not touched");
  });
});

Deno.test("service: a full queue drops frames and counts them; the hourly limit counts too", async () => {
  await withDir(async (dir) => {
    const service = await CaptureService.open(dir, log, 2);
    await service.policies.set("m", policy({ mode: "all", max_per_hour: 4 }));
    const offer = () => service.offer({ ...frame("m"), image: PNG });
    for (let i = 0; i < 3; i++) offer(); // synchronous: nothing is written yet, the third finds the queue full
    assert.equal(service.counts.dropped.queue_full, 1, "a dropped frame does not count toward the hour");
    await service.idle();
    assert.equal(service.counts.stored, 2);
    offer(), offer();
    await service.idle();
    offer(); // the fifth kept frame this hour
    await service.idle();
    assert.deepEqual([service.counts.stored, service.counts.dropped.rate_limit], [4, 1]);
    service.offer({ ...frame("off-model"), image: PNG });
    await service.idle();
    assert.equal(service.counts.stored, 4, "a model without a policy captures nothing");
    const reopened = await CaptureService.open(dir, log);
    assert.equal(reopened.policies.get("m").mode, "all", "the policy is persisted");
    assert.equal(reopened.store.all({ model: "m" })[0].format, "png");
  });
});

Deno.test("service: uncertain asks the previous version in the worker, with at most half the queue", async () => {
  await withDir(async (dir) => {
    const service = await CaptureService.open(dir, log, 4);
    await service.policies.set("m", policy({ mode: "uncertain", uncertain: { low: 0.3, high: 0.6 } }));
    const previous = [{ class_id: 0, box: { x1: 0, y1: 0, x2: 10, y2: 10 } }];
    const asked: number[] = [];
    service.useSecondOpinion((f) => {
      asked.push(f.version);
      return Promise.resolve(f.version === 1 ? null : previous);
    });
    const offer = (version: number, confidence: number, box = previous[0].box) =>
      service.offer({
        ...frame("m"),
        version,
        image: PNG,
        predictions: [{ class_id: 0, class_name: "a", confidence, box }],
      });
    offer(2, 0.9); // agrees with the previous version
    offer(2, 0.9, { x1: 20, y1: 20, x2: 30, y2: 30 }); // disagrees
    offer(2, 0.95); // half the queue holds checks: not compared
    offer(2, 0.4); // in the band: kept outright, no check
    offer(1, 0.9); // would be checked, but the queue is still busy
    assert.deepEqual(asked, [], "nothing is asked on the offering call");
    assert.equal(service.counts.unchecked, 2);
    await service.idle();
    assert.deepEqual(asked, [2, 2], "only the two queued checks were asked");
    assert.equal(service.counts.stored, 2, "the disagreeing frame and the one in the band");
    offer(1, 0.9); // a model's first version has no previous one: kept by the band alone
    await service.idle();
    assert.equal(service.counts.stored, 2);
  });
});

Deno.test("labels: class and box checks, stable 1-in-10 val split, normalised YOLO rows", () => {
  const meta = { id: "x", width: 200, height: 100, labels: null } as unknown as CaptureMeta;
  assert.deepEqual(labelProblems([{ class_id: 1, box: { x1: 0, y1: 0, x2: 200, y2: 100 } }], meta, 2), []);
  const problems = labelProblems(
    [
      { class_id: 2, box: { x1: 0, y1: 0, x2: 10, y2: 10 } },
      { class_id: 0, box: { x1: 0, y1: 0, x2: 201, y2: 10 } },
      { class_id: 0, box: { x1: 5, y1: 0, x2: 5, y2: 10 } },
    ],
    meta,
    2,
  );
  assert.equal(problems.length, 3, problems.join("\n"));
  const ids = Array.from({ length: 2000 }, (_, i) => `id-${i}`);
  const val = ids.filter((id) => defaultSplit(id) === "val").length;
  // A hash split is a binomial draw: within 3 standard deviations of n/10.
  const sd = Math.sqrt(ids.length * (1 / VAL_ONE_IN) * (1 - 1 / VAL_ONE_IN));
  assert.ok(Math.abs(val - ids.length / VAL_ONE_IN) < 3 * sd, `${val} of ${ids.length} to val`);
  assert.equal(defaultSplit("id-7"), defaultSplit("id-7"));
  const rows = yoloLabelText({
    ...meta,
    labels: [{ class_id: 1, box: { x1: 50, y1: 25, x2: 150, y2: 75 } }],
  });
  assert.equal(rows, "1 0.500000 0.500000 0.500000 0.500000\n");
});

Deno.test("replay: this round's train captures plus earlier rounds' at replay_fraction of the written set", async () => {
  await withDir(async (dir) => {
    const store = await CaptureStore.open(join(dir, "frames"), log);
    const base = new Date("2026-01-02T00:00:00Z"); // the base version's creation: rounds before it are earlier
    const earlier = new Date(base.getTime() - 1000), fresh = new Date(base.getTime() + 1000);
    for (const [time, n] of [[earlier, 12], [fresh, 8]] as const) {
      for (let i = 0; i < n; i++) {
        const { id } = (await store.add({ ...frame("m", 10, time), image: PNG }, 1e9)).stored!;
        await store.update(id, (m) => ({ ...m, status: "labelled", labels: [], split: "train" }));
      }
    }
    const train = store.all({ model: "m", status: "labelled" });
    const isEarlier = (c: CaptureMeta) => new Date(c.time) < base;
    for (const fraction of [0.2, 0.5]) {
      const picked = withReplay(train, base, fraction, Math.random);
      const out = join(dir, `set-${fraction}`);
      const written = await writeCaptureDataset(store, "m", ["a"], out, undefined, picked);
      const files = [...Deno.readDirSync(join(out, "images/train"))].map((e) => e.name.split(".")[0]);
      assert.equal(files.length, written.train);
      const replayed = files.filter((id) => isEarlier(store.get(id)!)).length;
      assert.equal(files.length - replayed, 8, "every capture of this round is written");
      // The replayed share is the fraction, to the nearest whole capture.
      assert.ok(
        Math.abs(replayed / files.length - fraction) <= 0.5 / files.length,
        `${replayed}/${files.length}`,
      );
    }
    assert.equal(
      withReplay(train, base, 1, Math.random).length,
      20,
      "a fraction of 1 replays every earlier one",
    );
    assert.equal(withReplay(train, base, 0, Math.random).filter(isEarlier).length, 0);
  });
});
