/**
 * The forgetting guard: a fine-tune that improves the site's val captures may still have forgotten what the
 * model knew. When the model has a regression set (src/capture/regression_set.ts) and the job activates
 * `if_better`, the base and the result are scored on that set (regression_score.ts) and the result is activated
 * only if it also loses at most the set's `max_regression` of mAP@0.5:0.95 there. Either way the version keeps
 * both scores (`regression_map50_95`, `base_regression_map50_95`) in its metrics.
 */
import type { CaptureService } from "../capture/service.ts";
import { publishResult } from "../jobs/publish.ts";
import type { Registry } from "../registry/registry.ts";
import type { Backend } from "../serving/backend.ts";
import { scoreOnDataset } from "./regression_score.ts";
import type { WorkerTrainerDeps } from "./worker_trainer.ts";

export function guardedPublish(
  registry: Registry,
  capture: CaptureService,
  backend: Backend,
  log: (message: string) => void,
): WorkerTrainerDeps["publish"] {
  return async (job, bytes, evals) => {
    const set = job.config.activate === "if_better" ? await capture.regression.get(job.model) : null;
    if (!set) return await publishResult(registry, job, bytes, evals);
    const baseVersion = job.baseVersion ?? registry.model(job.model).active!;
    const { nc } = registry.version(job.model, baseVersion);
    const base = await scoreOnDataset(backend, await registry.read(job.model, baseVersion), set.dir, nc);
    const result = await scoreOnDataset(backend, bytes, set.dir, nc);
    const loss = base.map50_95 - result.map50_95;
    const extra = { regression_map50_95: result.map50_95, base_regression_map50_95: base.map50_95 };
    if (loss <= set.max_regression) return await publishResult(registry, job, bytes, evals, extra);
    log(
      `job ${job.id}: not activated, mAP@0.5:0.95 on ${job.model}'s regression set fell by ${
        loss.toFixed(4)
      } ` +
        `(${base.map50_95.toFixed(4)} -> ${
          result.map50_95.toFixed(4)
        }; at most ${set.max_regression} allowed)`,
    );
    return await publishResult(
      registry,
      { ...job, config: { ...job.config, activate: "never" } },
      bytes,
      evals,
      extra,
    );
  };
}
