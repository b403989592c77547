// The job list: every fine-tune job the server knows, newest first (the API lists oldest first).
import { api, describeError } from "./api.js";
import { watchJob } from "./finetune.js";
import { jobProgress, shortId } from "./job_state.js";

export async function refreshJobs() {
  const status = document.getElementById("jobs-status");
  try {
    const { jobs } = await api("/v1/jobs");
    const rows = jobs.map(renderJob).reverse();
    document.querySelector("#job-list tbody").replaceChildren(...rows);
    status.textContent = jobs.length ? `${jobs.length} job${jobs.length === 1 ? "" : "s"}.` : "No jobs yet.";
  } catch (err) {
    status.textContent = `Could not list jobs: ${describeError(err)}`;
  }
}

/** Redraws one job's row from a live update, without asking the server for the whole list. */
export function updateJobRow(job) {
  const row = [...document.querySelectorAll("#job-list tbody tr")].find((tr) => tr.dataset.jobId === job.id);
  row?.replaceWith(renderJob(job));
}

function renderJob(job) {
  const tr = document.createElement("tr");
  tr.dataset.jobId = job.id;
  tr.dataset.status = job.status;
  const p = jobProgress(job);
  const cells = [
    shortId(job.id),
    job.baseVersion ? `${job.model} v${job.baseVersion}` : job.model,
    job.status,
    `${Math.round(p.fraction * 100)}%`,
    job.resultVersion ? `v${job.resultVersion}` : job.error?.message ?? "",
  ];
  for (const text of cells) tr.insertCell().textContent = text;
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Watch";
  button.setAttribute("aria-label", `Watch job ${shortId(job.id)}`);
  button.addEventListener("click", async () => {
    watchJob(await api(`/v1/jobs/${encodeURIComponent(job.id)}`));
    document.getElementById("finetune").scrollIntoView();
  });
  tr.insertCell().append(button);
  return tr;
}
