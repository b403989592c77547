import assert from "node:assert/strict";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { defaultModelCheck, selfTestBackend } from "../../src/selftest/startup.ts";
import { unloadableBackend, zeroOutputBackend } from "./_broken_backends.ts";

const check = await defaultModelCheck();

Deno.test("a backend that passes the startup self-test is kept, with the result in its reason", async () => {
  const tested = await selfTestBackend({ backend: nativeBackend, reason: "requested" }, check);
  assert.equal(tested.backend, nativeBackend);
  assert.equal(tested.passed, true);
  assert.match(tested.reason, /^requested; self-test passed \(native: found (\d+) of \1 drawn shapes/);
});

Deno.test("a webgpu backend that computes garbage or cannot load falls back to the CPU backend", async () => {
  for (
    const [broken, why] of [
      [zeroOutputBackend("webgpu"), /webgpu: found 0 of \d+ drawn shapes/],
      [unloadableBackend("webgpu"), /webgpu: .*the webgpu inference engine could not load the model/],
    ] as const
  ) {
    const tested = await selfTestBackend({ backend: broken, reason: "auto: hardware adapter X" }, check);
    assert.equal(tested.backend, nativeBackend);
    assert.equal(tested.passed, true);
    assert.match(tested.reason, /^auto: hardware adapter X; self-test FAILED \(/);
    assert.match(tested.reason, why);
    assert.match(tested.reason, /fell back to native, self-test passed \(native: found (\d+) of \1/);
  }
});

Deno.test("the next CPU backend is tried when the first fails too, and the choice is kept when all fail", async () => {
  const wasmLike = zeroOutputBackend("wasm");
  const tested = await selfTestBackend(
    { backend: unloadableBackend("webgpu"), reason: "requested" },
    check,
    [unloadableBackend("native"), nativeBackend],
  );
  assert.equal(tested.backend, nativeBackend);
  assert.match(
    tested.reason,
    /\(webgpu: .*could not load the model; native: .*could not load the model\); fell back to native,/,
  );

  const gpu = zeroOutputBackend("webgpu");
  const none = await selfTestBackend({ backend: gpu, reason: "requested" }, check, [wasmLike]);
  assert.equal(none.backend, gpu);
  assert.equal(none.passed, false);
  assert.match(none.reason, /self-test FAILED on every backend \(webgpu: found 0 .*; wasm: found 0 /);
});

Deno.test("a CPU backend that fails the self-test is kept (nothing to fall back to) and marked failed", async () => {
  const cpu = zeroOutputBackend("native");
  const tested = await selfTestBackend({ backend: cpu, reason: "requested" }, check);
  assert.equal(tested.backend, cpu);
  assert.equal(tested.passed, false);
  assert.match(tested.reason, /^requested; self-test FAILED \(native: found 0 of \d+ drawn shapes/);
});
