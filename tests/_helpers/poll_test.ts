import assert from "node:assert/strict";
import { until } from "./poll.ts";

Deno.test("until() returns the first non-null value the probe gives", async () => {
  let calls = 0;
  const value = await until("the third call", 5_000, () => ++calls === 3 ? "done" : null, { pollMs: 1 });
  assert.equal(value, "done");
  assert.equal(calls, 3);
});

Deno.test("until() names what it waited for once the wait is over, after probing past the deadline", async () => {
  let calls = 0;
  await assert.rejects(
    until("nothing", 20, () => (calls++, null), { pollMs: 5 }),
    /timed out after 20 ms waiting for nothing$/,
  );
  assert.ok(calls >= 2, `${calls} probes`);
});

Deno.test("until() ends on a probe's error unless told to retry, then names the last error", async () => {
  await assert.rejects(until("a throw", 1_000, () => Promise.reject(new Error("boom"))), /^Error: boom$/);
  let calls = 0;
  const value = await until("a recovery", 5_000, () => {
    if (++calls < 3) throw new Error(`not yet ${calls}`);
    return calls;
  }, { pollMs: 1, retryErrors: true });
  assert.equal(value, 3);
  await assert.rejects(
    until("a server that never starts", 10, () => Promise.reject(new Error("refused")), {
      pollMs: 2,
      retryErrors: true,
    }),
    /waiting for a server that never starts \(last error: Error: refused\)$/,
  );
});
