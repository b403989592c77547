import assert from "node:assert/strict";
import { etaSeconds } from "../../src/jobs/run.ts";
import type { JobProgress } from "../../src/jobs/types.ts";

Deno.test("etaSeconds() extrapolates this attempt's iteration rate", () => {
  const progress = { iteration: 30, iterations: 100 } as JobProgress;
  assert.equal(etaSeconds(progress, 10, 40), (100 - 30) * 40 / 20);
  assert.equal(etaSeconds(progress, 30, 40), null, "no iterations yet in this attempt");
  assert.equal(etaSeconds({ ...progress, iterations: 0 }, 10, 40), null, "total unknown");
});
