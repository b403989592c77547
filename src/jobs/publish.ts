/**
 * The end of a fine-tune: the EMA weights become a new registry version (parent = the base version, the
 * evaluation in its meta, source = this job) and are activated per the job's `activate` setting — `if_better`
 * only when mAP@0.5:0.95 on the held-out images does not drop below the base model's, `always`, or `never`.
 * Publishing is idempotent per job: the version's meta names the job (`source.job_id`), and a job resumed
 * after a crash that came between the publish and the job record's update completes that publish instead of
 * training and publishing again.
 * @module
 */
import type { Registry } from "../registry/registry.ts";
import type { VersionMeta } from "../registry/store.ts";
import type { EvalMetrics, Evaluations } from "../train/trainer.ts";
import type { Job, Trainer, TrainerResult } from "./types.ts";

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
  evals: Evaluations,
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

/** The version an earlier attempt of `job` published, found by the job id in its meta; null if none. */
export function publishedVersion(registry: Registry, job: Readonly<Job>): VersionMeta | null {
  const model = registry.models().find((m) => m.name === job.model);
  return model?.versions.find((v) => v.source.type === "finetune" && v.source.job_id === job.id) ?? null;
}

/** The evaluation as it was stored in a version's meta by {@link resultMetrics}, or null where it is absent. */
function storedEval(metrics: Record<string, number>, prefix: "" | "base_"): EvalMetrics | null {
  const map50 = metrics[`${prefix}map50`], map50_95 = metrics[`${prefix}map50_95`];
  return map50 === undefined || map50_95 === undefined ? null : { map50, map50_95 };
}

/**
 * Finish the publish of a version an earlier attempt added: activate it when the job's policy (applied to the
 * evaluation stored in its meta) says so, which a crash between adding and activating left undone. If
 * activation fails the version is removed again and this throws, as {@link publishResult} does.
 */
export async function completePublish(
  registry: Registry,
  job: Readonly<Job>,
  meta: VersionMeta,
): Promise<TrainerResult> {
  const metrics = meta.metrics ?? {};
  const activate = shouldActivate(job.config.activate, storedEval(metrics, "base_"), storedEval(metrics, ""));
  if (activate) {
    try {
      await registry.activate(meta.name, meta.version);
    } catch (err) {
      await registry.remove(meta.name, meta.version);
      throw err;
    }
  }
  return { resultVersion: meta.version, activated: activate, metrics };
}

/**
 * `trainer`, except that a job whose result an earlier attempt already published is not trained again: its
 * publish is completed ({@link completePublish}) and the job ends with that version.
 */
export function skipPublished(registry: Registry, trainer: Trainer): Trainer {
  return {
    suspends: trainer.suspends,
    async run(job, ctx) {
      const earlier = publishedVersion(registry, job);
      return earlier ? await completePublish(registry, job, earlier) : await trainer.run(job, ctx);
    },
  };
}
