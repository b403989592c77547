// Reads the progress facts out of a job record (src/jobs/types.ts) for the live view and the job list.
export const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

const LOSS_NAMES = ["box", "obj", "cls"];
// train.py's parameter groups in optimizer order: biases, weights (with decay), norm weights.
const LR_NAMES = ["biases", "weights", "norm weights"];

/** Job ids are UUIDs; their first 8 hex digits tell a site's jobs apart and fit a phone screen. */
export function shortId(id) {
  return id.slice(0, 8);
}

export function jobProgress(job) {
  const p = job.progress;
  const fraction = job.status === "succeeded" ? 1 : p.iterations ? p.iteration / p.iterations : 0;
  const m = p.metrics ?? {};
  return {
    // `epoch` counts from 0 and names the epoch in training; people count from 1.
    epoch: Math.min(p.epoch + 1, p.epochs),
    epochs: p.epochs,
    iteration: p.iteration,
    iterations: p.iterations,
    fraction: Math.min(1, Math.max(0, fraction)),
    loss: named(p.lossItems, LOSS_NAMES),
    lr: named(p.lr, LR_NAMES),
    imagesPerSecond: p.imagesPerSecond,
    etaSeconds: p.etaSeconds,
    before: { map50: m.base_map50, map: m.base_map50_95 },
    after: { map50: m.map50, map: m.map50_95 },
  };
}

function named(values, names) {
  return values ? Object.fromEntries(values.map((v, i) => [names[i], v])) : undefined;
}
