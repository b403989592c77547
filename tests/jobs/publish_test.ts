import assert from "node:assert/strict";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { publishResult, resultMetrics, shouldActivate, skipPublished } from "../../src/jobs/publish.ts";
import type { Job, TrainerContext } from "../../src/jobs/types.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { newModelBytes } from "../../src/train/new_model.ts";

const base = { map50: 0.5, map50_95: 0.3 };

Deno.test("shouldActivate(): if_better keeps mAP@0.5:0.95 from dropping; always; never", () => {
  assert.equal(shouldActivate("if_better", base, { map50: 0.4, map50_95: 0.3 }), true, "equal is not a drop");
  assert.equal(shouldActivate("if_better", base, { map50: 0.9, map50_95: 0.29 }), false);
  assert.equal(shouldActivate("if_better", null, base), false, "nothing to compare against");
  assert.equal(shouldActivate("always", base, { map50: 0, map50_95: 0 }), true);
  assert.equal(shouldActivate("never", base, { map50: 1, map50_95: 1 }), false);
});

Deno.test("publishResult() adds the version with parent, source and metrics, activating per policy", async () => {
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 64 << 20 });
  const bytes = (seed: number) => newModelBytes({ nc: 2, depth: 0.33, width: 0.25, imgsz: 128, seed });
  const v1 = await registry.add("shapes", bytes(0), { source: { type: "upload" }, activate: true });
  const job = (activate: "if_better" | "never") =>
    ({
      id: `job-${activate}`,
      model: "shapes",
      baseVersion: v1.version,
      config: parseFinetuneConfig({ activate }),
    }) as Job;

  const better = { map50: 0.6, map50_95: 0.35 };
  const r1 = await publishResult(registry, job("if_better"), bytes(1), { base, result: better });
  assert.deepEqual(r1, {
    resultVersion: 2,
    activated: true,
    metrics: { map50: 0.6, map50_95: 0.35, base_map50: 0.5, base_map50_95: 0.3 },
  });
  const meta = registry.version("shapes", 2);
  assert.deepEqual([meta.parent, meta.source, meta.metrics], [
    1,
    { type: "finetune", job_id: "job-if_better" },
    r1.metrics,
  ]);
  assert.equal(registry.model("shapes").active, 2);

  const r2 = await publishResult(registry, job("never"), bytes(2), { base, result: better });
  assert.deepEqual([r2.resultVersion, r2.activated], [3, false]);
  assert.equal(registry.model("shapes").active, 2);
});

Deno.test("skipPublished(): a job whose version an earlier attempt added is not trained or published again", async () => {
  const registry = await Registry.open(new MemoryStore(), { maxBytes: 64 << 20 });
  const bytes = (seed: number) => newModelBytes({ nc: 2, depth: 0.33, width: 0.25, imgsz: 128, seed });
  await registry.add("shapes", bytes(0), { source: { type: "upload" }, activate: true });
  const job = (id: string, activate: "if_better" | "never") =>
    ({ id, model: "shapes", baseVersion: 1, config: parseFinetuneConfig({ activate }) }) as Job;
  const trained: string[] = [];
  const trainer = skipPublished(registry, {
    run: (j) => {
      trained.push(j.id);
      return publishResult(registry, j, bytes(trained.length), {
        base,
        result: { map50: 0.6, map50_95: 0.35 },
      });
    },
  });
  const ctx = {} as TrainerContext; // neither trainer reads it

  // A crash between adding the version and activating it: the version exists, the pointer did not move.
  const metrics = resultMetrics(base, { map50: 0.6, map50_95: 0.35 });
  const crashed = await registry.add("shapes", bytes(9), {
    source: { type: "finetune", job_id: "crashed" },
    parent: 1,
    metrics,
  });
  assert.equal(registry.model("shapes").active, 1);
  const resumed = await trainer.run(job("crashed", "if_better"), ctx);
  assert.deepEqual(resumed, { resultVersion: crashed.version, activated: true, metrics });
  assert.equal(registry.model("shapes").active, crashed.version, "the interrupted activation is completed");

  // Published and its record not updated, policy `never`: returned as it is.
  const kept = await registry.add("shapes", bytes(10), {
    source: { type: "finetune", job_id: "kept" },
    parent: 1,
    metrics,
  });
  assert.deepEqual(await trainer.run(job("kept", "never"), ctx), {
    resultVersion: kept.version,
    activated: false,
    metrics,
  });
  assert.equal(registry.model("shapes").active, crashed.version);

  assert.deepEqual(trained, [], "no job was trained again");
  const fresh = await trainer.run(job("fresh", "if_better"), ctx);
  assert.deepEqual(trained, ["fresh"]);
  assert.equal(fresh.resultVersion, kept.version + 1);
  const fromJob = (id: string) =>
    registry.model("shapes").versions.filter((v) => v.source.type === "finetune" && v.source.job_id === id);
  assert.deepEqual(["crashed", "kept", "fresh"].map((id) => fromJob(id).length), [1, 1, 1]);
});
