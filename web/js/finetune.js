// Start a fine-tune and watch one job live over server-sent events: progress, loss and lr charts, speed, ETA,
// and mAP before/after once it ends.
import { api, describeError } from "./api.js";
import { drawLineChart } from "./chart.js";
import { formatDuration, formatMetric, formatNumber } from "./format.js";
import { jobProgress, shortId, TERMINAL } from "./job_state.js";

let watching = null;
const listeners = [];

/** Calls `fn(job, statusChanged)` on every update of the watched job. */
export function onJobUpdate(fn) {
  listeners.push(fn);
}

export function initFinetune() {
  const form = document.getElementById("finetune-form");
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const status = document.getElementById("ft-status");
    const problems = document.getElementById("ft-problems");
    status.textContent = "Uploading the dataset…";
    problems.hidden = true;
    const body = new FormData();
    body.append("config", JSON.stringify(configFrom(form)));
    // Not `form.dataset`: that name is also every element's data-* map.
    body.append("dataset", document.getElementById("ft-dataset").files[0]);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const job = await api(`/v1/models/${encodeURIComponent(form.model.value)}/finetune`, {
        method: "POST",
        body,
      });
      status.textContent = `Job ${shortId(job.id)} accepted.`;
      watchJob(job);
    } catch (err) {
      // The problems are listed one per line below; the message would repeat them all in one sentence.
      const listed = err.problems?.length ?? 0;
      status.textContent = listed
        ? `Could not start the fine-tune: ${listed} problem${listed === 1 ? "" : "s"} in the dataset.`
        : `Could not start the fine-tune: ${describeError(err)}`;
      showProblems(problems, err.problems ?? []);
    } finally {
      button.disabled = false;
    }
  });
  document.getElementById("job-cancel").addEventListener("click", async () => {
    if (!watching) return;
    try {
      await api(`/v1/jobs/${encodeURIComponent(watching.id)}`, { method: "DELETE" });
    } catch (err) {
      document.getElementById("job-status").textContent = `Cancel failed: ${describeError(err)}`;
    }
  });
}

function showProblems(list, problems) {
  list.replaceChildren(...problems.map((p) => {
    const item = document.createElement("li");
    item.textContent = `${p.file}${p.line ? `:${p.line}` : ""}: ${p.message}`;
    return item;
  }));
  list.hidden = problems.length === 0;
}

/** The config in the fine-tune form, also used to fine-tune from captures on the review page. */
export function finetuneConfig() {
  return configFrom(document.getElementById("finetune-form"));
}

function configFrom(form) {
  return {
    epochs: Number(form.epochs.value),
    batch_size: Number(form.batch_size.value),
    imgsz: Number(form.imgsz.value),
    optimizer: form.optimizer.value,
    freeze: Number(form.freeze.value),
    val_fraction: Number(form.val_fraction.value),
    augment: form.augment.checked,
    activate: form.activate.value,
    hyp: { lr0: Number(form.lr0.value) },
  };
}

/** Shows `job` in the live view and follows its event stream until it ends. */
export function watchJob(job) {
  watching?.source?.close();
  const view = document.getElementById("job-view");
  view.hidden = false;
  view.dataset.jobId = job.id;
  const title = document.getElementById("job-title");
  title.textContent = `Job ${shortId(job.id)} on ${job.model}`;
  title.title = job.id;
  const state = { id: job.id, loss: new Map(), lr: new Map(), source: null, status: null };
  watching = state;
  render(state, job);
  if (TERMINAL.has(job.status)) return;
  const source = new EventSource(`/v1/jobs/${encodeURIComponent(job.id)}/events`);
  state.source = source;
  const onEvent = (e) => render(state, JSON.parse(e.data).job);
  for (const type of ["progress", "status"]) source.addEventListener(type, onEvent);
  source.onerror = () => {
    if (source.readyState === EventSource.CLOSED && watching === state) {
      document.getElementById("job-status").textContent = "Lost the event stream; reload to follow the job.";
    }
  };
}

function render(state, job) {
  if (watching !== state) return;
  const p = jobProgress(job);
  record(state.loss, p.iteration, p.loss);
  record(state.lr, p.iteration, p.lr);
  const bar = document.getElementById("job-progress");
  bar.value = p.fraction;
  bar.setAttribute("aria-valuetext", `${Math.round(p.fraction * 100)} percent`);
  const view = document.getElementById("job-view");
  view.dataset.status = job.status;
  const status = document.getElementById("job-status");
  status.textContent = describe(job, p);
  stats({
    Epoch: `${p.epoch} / ${p.epochs}`,
    Iteration: p.iterations ? `${p.iteration} / ${p.iterations}` : "–",
    "Images/s": formatNumber(p.imagesPerSecond, 1),
    ETA: formatDuration(p.etaSeconds),
    "mAP@0.5 before": formatMetric(p.before.map50),
    "mAP@0.5 after": formatMetric(p.after.map50),
    "mAP@0.5:0.95 before": formatMetric(p.before.map),
    "mAP@0.5:0.95 after": formatMetric(p.after.map),
    "Result version": job.resultVersion ? `v${job.resultVersion}${job.activated ? " (activated)" : ""}` : "–",
  });
  drawLineChart(document.getElementById("loss-chart"), series(state.loss), { title: "Loss items" });
  drawLineChart(document.getElementById("lr-chart"), series(state.lr), {
    title: "Learning rates",
    log: true,
  });
  document.getElementById("job-cancel").disabled = TERMINAL.has(job.status);
  if (TERMINAL.has(job.status)) state.source?.close();
  const statusChanged = state.status !== job.status;
  state.status = job.status;
  for (const fn of listeners) fn(job, statusChanged);
}

function describe(job, p) {
  if (job.status === "failed") return `Failed: ${job.error?.message ?? "unknown error"}`;
  if (job.status === "succeeded") {
    if (!job.resultVersion) return "Succeeded.";
    return `Succeeded: version ${job.resultVersion} created${job.activated ? " and activated" : ""}.`;
  }
  // In steps of 10% so the live region speaks now and then, not on every iteration.
  if (job.status === "running") return `Running: ${Math.floor(p.fraction * 10) * 10}% done.`;
  return job.status ? `${job.status[0].toUpperCase()}${job.status.slice(1)}.` : "";
}

function stats(entries) {
  const list = document.getElementById("job-stats");
  list.replaceChildren();
  for (const [name, value] of Object.entries(entries)) {
    const dt = document.createElement("dt");
    dt.textContent = name;
    const dd = document.createElement("dd");
    dd.textContent = String(value);
    list.append(dt, dd);
  }
}

function record(history, step, values) {
  if (!values) return;
  for (const [name, value] of Object.entries(values)) {
    if (typeof value !== "number") continue;
    if (!history.has(name)) history.set(name, new Map());
    history.get(name).set(step, value);
  }
}

function series(history) {
  return [...history].map(([name, points]) => ({ name, points: [...points].sort((a, b) => a[0] - b[0]) }));
}
