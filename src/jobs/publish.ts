/**
 * The end of a fine-tune: the EMA weights become a new registry version (parent = the base version, the
 * evaluation in its meta, source = this job) and are activated per the job's `activate` setting — `if_better`
 * only when mAP@0.5:0.95 on the held-out images does not drop below the base model's, `always`, or `never`.
 * @module
 */
import type { Registry } from "../registry/registry.ts";
import type { Job, TrainerResult } from "./types.ts";

/** val.py's headline numbers for one model on the held-out images. */
export interface EvalMetrics {
  map50: number;
  map50_95: number;
}

/** Whether the result should serve. `if_better` without both evaluations (no held-out images) says no. */
export function shouldActivate(
  policy: Job["config"]["activate"],
  base: EvalMetrics | null,
  result: EvalMetrics | null,
): boolean {
  if (policy !== "if_better") return policy === "always";
  return base !== null && result !== null && result.map50_95 >= base.map50_95;
}

/** Metrics as the job record and the version meta keep them: `map50`, `map50_95`, `base_map50`, `base_map50_95`. */
export function resultMetrics(base: EvalMetrics | null, result: EvalMetrics | null): Record<string, number> {
  return {
    ...(result && { map50: result.map50, map50_95: result.map50_95 }),
    ...(base && { base_map50: base.map50, base_map50_95: base.map50_95 }),
  };
}

/**
 * Add `bytes` (the EMA model) as a version of the job's model and activate it per the policy. If activation
 * fails the registry removes the version again and this throws, so the job fails with the reason. `extra`
 * metrics (a caller's own checks, such as a regression set) are kept beside the evaluation.
 */
export async function publishResult(
  registry: Registry,
  job: Readonly<Job>,
  bytes: Uint8Array,
  evals: { base: EvalMetrics | null; result: EvalMetrics | null },
  extra: Record<string, number> = {},
): Promise<TrainerResult> {
  const activate = shouldActivate(job.config.activate, evals.base, evals.result);
  const metrics = { ...resultMetrics(evals.base, evals.result), ...extra };
  const meta = await registry.add(job.model, bytes, {
    source: { type: "finetune", job_id: job.id },
    parent: job.baseVersion,
    metrics,
    activate,
  });
  return { resultVersion: meta.version, activated: activate, metrics };
}
