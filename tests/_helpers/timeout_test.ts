import assert from "node:assert/strict";
import { testDefinition, withTimeout } from "./timeout.ts";

/** Long enough for a resolved body to win on a loaded machine, short enough to keep the test quick. */
const LIMIT_MS = 200;
const context = {} as Deno.TestContext;

Deno.test("withTimeout() fails a body that never settles, naming the test and the limit", async () => {
  const hung = withTimeout({ name: "hangs", fn: () => new Promise<void>(() => {}) }, LIMIT_MS);
  await assert.rejects(Promise.resolve(hung.fn(context)), /'hangs' timed out after 0\.2 s/);
});

Deno.test("withTimeout() passes a body's own outcome through and keeps the other options", async () => {
  let ran = false;
  const ok = withTimeout({ name: "ok", sanitizeOps: false, fn: () => void (ran = true) }, LIMIT_MS);
  await ok.fn(context);
  assert.ok(ran);
  assert.equal(ok.sanitizeOps, false);
  const failing = withTimeout({ name: "fails", fn: () => Promise.reject(new Error("own error")) }, LIMIT_MS);
  await assert.rejects(Promise.resolve(failing.fn(context)), /own error/);
});

Deno.test("testDefinition() reads every Deno.test overload", () => {
  const fn = function named() {};
  assert.deepEqual(testDefinition([{ name: "a", fn }]), { name: "a", fn });
  assert.deepEqual(testDefinition(["b", fn]), { name: "b", fn });
  assert.deepEqual(testDefinition([fn]), { name: "named", fn });
  assert.deepEqual(testDefinition(["c", { ignore: true }, fn]), { name: "c", ignore: true, fn });
  assert.deepEqual(testDefinition([{ ignore: true }, fn]), { name: "named", ignore: true, fn });
  assert.deepEqual(testDefinition([{ name: "d", ignore: true }, fn]), { name: "d", ignore: true, fn });
});
