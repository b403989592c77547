// Models and their versions: which one serves, its metrics, download, and activate / roll back per version.
import { api, describeError } from "./api.js";
import { formatMetric } from "./format.js";
import { shortId } from "./job_state.js";

const listeners = [];

/** Calls `fn(models)` after every refresh so the model pickers stay in step with the registry. */
export function onModels(fn) {
  listeners.push(fn);
}

export async function refreshModels() {
  const status = document.getElementById("models-status");
  try {
    const { models } = await api("/v1/models");
    const versions = await Promise.all(
      models.map((m) => api(`/v1/models/${encodeURIComponent(m.name)}/versions`)),
    );
    const list = document.getElementById("model-list");
    list.replaceChildren(...models.map((m, i) => renderModel(m, versions[i])));
    status.textContent = `${models.length} model${models.length === 1 ? "" : "s"} loaded.`;
    for (const fn of listeners) fn(models);
  } catch (err) {
    status.textContent = `Could not list models: ${describeError(err)}`;
  }
}

function renderModel(model, { active, versions }) {
  const card = document.createElement("article");
  card.className = "model";
  card.dataset.model = model.name;
  card.dataset.active = String(active);
  const heading = document.createElement("h3");
  heading.textContent = model.name;
  const facts = document.createElement("p");
  facts.className = "facts";
  facts.textContent = [
    `active v${active}`,
    `backend ${model.backend}`,
    `${model.nc} classes`,
    `${model.imgsz} px input`,
  ].join(" · ");
  card.append(heading, facts, renderVersions(model.name, versions, active));
  return card;
}

function renderVersions(name, versions, active) {
  const table = document.createElement("table");
  table.className = "grid";
  table.innerHTML = `<caption class="sr">Versions of ${escape(name)}</caption><thead><tr>
    <th scope="col">Version</th><th scope="col">Created</th><th scope="col">Source</th>
    <th scope="col">mAP@0.5</th><th scope="col">mAP@0.5:0.95</th>
    <th scope="col"><span class="sr">Actions</span></th>
    </tr></thead><tbody></tbody>`;
  for (const v of [...versions].reverse()) {
    const tr = table.tBodies[0].insertRow();
    tr.dataset.version = String(v.version);
    const isActive = v.version === active;
    if (isActive) tr.className = "active";
    const cells = [
      isActive ? `v${v.version} (active)` : `v${v.version}`,
      formatDate(v.created),
      describeSource(v.source, v.parent),
      formatMetric(v.metrics?.map50),
      formatMetric(v.metrics?.map50_95),
    ];
    for (const text of cells) tr.insertCell().textContent = text;
    const actions = tr.insertCell();
    actions.className = "actions";
    const download = document.createElement("a");
    download.href = `/v1/models/${encodeURIComponent(name)}/versions/${v.version}.onnx`;
    download.download = `${name}-v${v.version}.onnx`;
    download.textContent = "Download";
    download.setAttribute("aria-label", `Download ${name} version ${v.version}`);
    actions.append(download);
    if (!isActive) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = v.version < active ? "Roll back" : "Activate";
      button.setAttribute("aria-label", `${button.textContent} ${name} to version ${v.version}`);
      button.addEventListener("click", () => activate(name, v.version));
      actions.append(button);
    }
  }
  return table;
}

async function activate(name, version) {
  const status = document.getElementById("models-status");
  status.textContent = `Activating ${name} v${version}…`;
  try {
    await api(`/v1/models/${encodeURIComponent(name)}/activate`, {
      method: "POST",
      body: JSON.stringify({ version }),
      headers: { "Content-Type": "application/json" },
    });
    await refreshModels();
    status.textContent = `${name} v${version} is now active.`;
  } catch (err) {
    status.textContent = `Activate failed: ${describeError(err)}`;
  }
}

function describeSource(source, parent) {
  const from = parent ? ` of v${parent}` : "";
  if (source.type === "finetune") return `fine-tune ${shortId(source.job_id)}${from}`;
  if (source.type === "startup") return `startup file ${source.path.split("/").at(-1)}`;
  return `${source.type}${from}`;
}

function formatDate(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function escape(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}
