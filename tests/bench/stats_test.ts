// The benches' statistics: the definitions their reports name (nearest lower rank, no interpolation; the mean
// of the middle two for an even median), checked on samples given out of order.
import assert from "node:assert/strict";
import { median, quantile, round2 } from "../../src/bench/support/stats.ts";

Deno.test("quantile takes the sorted sample's element at floor((n - 1) p); NaN for no sample", () => {
  const xs = [50, 10, 40, 20, 30]; // sorted: 10 20 30 40 50
  assert.deepEqual([0, 0.5, 0.74, 0.75, 0.99, 1].map((p) => quantile(xs, p)), [10, 30, 30, 40, 40, 50]);
  assert.ok(Number.isNaN(quantile([], 0.5)));
  assert.deepEqual(xs, [50, 10, 40, 20, 30], "the caller's sample is left in its order");
});

Deno.test("median: the middle value, or the mean of the middle two", () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
});

Deno.test("round2 rounds to hundredths", () => {
  assert.deepEqual([1.234, 1.235001, -0.006].map(round2), [1.23, 1.24, -0.01]);
});
