import assert from "node:assert/strict";
import { ModelOverloadedError, SessionQueue } from "../../src/serving/session_queue.ts";

/** A run that stays open until the test ends it, and says when it started. */
function openRun() {
  const started = Promise.withResolvers<void>();
  const end = Promise.withResolvers<void>();
  return { started: started.promise, end: () => end.resolve(), work: () => (started.resolve(), end.promise) };
}

const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

Deno.test("SessionQueue runs at most `slots` at once, first come first served", async () => {
  const queue = new SessionQueue("m", 2, 10);
  const runs = [0, 1, 2, 3].map(() => openRun());
  const order: number[] = [];
  const done = runs.map((r, i) => queue.admit().run(() => (order.push(i), r.work())));
  await tick();
  assert.deepEqual(order, [0, 1], "two slots");
  assert.equal(queue.queued, 2, "the other two wait");
  runs[1].end();
  await runs[2].started;
  assert.deepEqual(order, [0, 1, 2], "the freed slot goes to the first waiter");
  runs[0].end(), runs[2].end(), runs[3].end();
  await Promise.all(done);
  assert.deepEqual(order, [0, 1, 2, 3]);
  assert.equal(queue.queued, 0);
});

Deno.test("SessionQueue sheds beyond maxQueue at once, counting a request from its admission", async () => {
  const queue = new SessionQueue("yolo", 1, 2);
  const first = openRun();
  const running = queue.admit().run(first.work);
  await first.started;
  // Two admitted and not yet running (say, decoding their images): the queue is full.
  const a = queue.admit();
  const b = queue.admit();
  assert.equal(queue.queued, 2);
  assert.throws(() => queue.admit(), (err: Error) => {
    assert.ok(err instanceof ModelOverloadedError);
    assert.equal(err.model, "yolo");
    assert.match(err.message, /'yolo' has 2 requests queued/);
    return true;
  });
  a.withdraw();
  a.withdraw();
  assert.equal(queue.queued, 1, "a withdrawn place is given back once");
  const c = queue.admit();
  first.end();
  await running;
  assert.deepEqual(
    await Promise.all([b.run(() => Promise.resolve("b")), c.run(() => Promise.resolve("c"))]),
    ["b", "c"],
  );
  assert.equal(queue.queued, 0);
  b.withdraw();
  assert.equal(queue.queued, 0, "withdrawing after the run changes nothing");
  await assert.rejects(b.run(() => Promise.resolve("again")), /runs once/);
});

Deno.test("SessionQueue frees the slot of a failed run, and runNow ignores the queue limit", async () => {
  const queue = new SessionQueue("m", 1, 1);
  await assert.rejects(queue.admit().run(() => Promise.reject(new Error("engine failed"))), /engine failed/);
  const held = queue.admit();
  assert.equal(
    await queue.runNow(() => Promise.resolve("warm-up")),
    "warm-up",
    "the queue is full, the slot is free",
  );
  assert.equal(await held.run(() => Promise.resolve(7)), 7);
});
