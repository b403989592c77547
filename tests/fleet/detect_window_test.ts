/**
 * A node's last-minute detect numbers: per model version the exact count and the median latency, detects older
 * than a minute dropped, and the latencies kept per second bounded.
 */
import assert from "node:assert/strict";
import { DETECT_WINDOW_MS, DetectWindow } from "../../src/fleet/detect_window.ts";

Deno.test("DetectWindow counts each version's detects of the last minute and their median latency", () => {
  let now = 1_000_000;
  const window = new DetectWindow(() => now);
  assert.deepEqual(window.summary(), []);
  for (const ms of [5, 1, 3]) window.observe("tiny", 1, ms);
  now += 1000;
  window.observe("tiny", 1, 7);
  window.observe("tiny", 2, 9);
  window.observe("other", 4, 2);
  assert.deepEqual(window.summary(), [
    { model: "other", version: 4, count: 1, p50_ms: 2 },
    { model: "tiny", version: 1, count: 4, p50_ms: (3 + 5) / 2 }, // sorted 1 3 5 7: mean of the middle two
    { model: "tiny", version: 2, count: 1, p50_ms: 9 },
  ]);
  // A minute after the first three: only the later detects are left.
  now += DETECT_WINDOW_MS - 1000;
  assert.deepEqual(window.summary().find((d) => d.model === "tiny" && d.version === 1), {
    model: "tiny",
    version: 1,
    count: 1,
    p50_ms: 7,
  });
  now += 1000;
  assert.deepEqual(window.summary(), [], "nothing in the last minute");
});

Deno.test("DetectWindow keeps every detect's count but a bounded number of latencies per second", () => {
  const window = new DetectWindow(() => 5_000);
  const detects = 10_000;
  for (let i = 0; i < detects; i++) window.observe("busy", 1, i < detects / 2 ? 1 : 100);
  const [busy] = window.summary();
  assert.equal(busy.count, detects);
  // The second's median is that of its first detects (all 1 ms here), not of all of them.
  assert.equal(busy.p50_ms, 1);
});
