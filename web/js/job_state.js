// Reads the progress facts out of a job object as the jobs API reports it, for the live view and the job list.
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

const LOSS_NAMES = ["box", "obj", "cls"];

export function jobProgress(job) {
  const epochs = job.epochs ?? job.total_epochs;
  const iterations = job.iterations ?? job.total_iterations;
  const epoch = job.epoch ?? 0;
  const iteration = job.iteration ?? 0;
  let fraction = job.progress;
  if (typeof fraction !== "number") {
    fraction = iterations ? iteration / iterations : epochs ? epoch / epochs : 0;
  }
  if (job.status === "succeeded") fraction = 1;
  return {
    epoch,
    epochs,
    iteration,
    iterations,
    fraction: Math.min(1, Math.max(0, fraction)),
    step: job.step ?? (iterations || epochs ? iteration : undefined),
    loss: named(job.loss_items ?? job.loss, LOSS_NAMES),
    lr: named(job.lr, ["lr0", "lr1", "lr2"]),
    before: job.metrics?.before ?? job.metrics?.base,
    after: job.metrics?.after ?? job.metrics?.result,
  };
}

function named(values, names) {
  if (!values) return undefined;
  if (Array.isArray(values)) return Object.fromEntries(values.map((v, i) => [names[i] ?? `#${i}`, v]));
  return values;
}
