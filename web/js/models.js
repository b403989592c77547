// Models and their versions: which one serves, its metrics, and activate / roll back per version.
import { api, describeError } from "./api.js";
import { formatMetric } from "./format.js";

const listeners = [];

/** Calls `fn(models)` after every refresh so the model pickers stay in step with the registry. */
export function onModels(fn) {
  listeners.push(fn);
}

export async function refreshModels() {
  const status = document.getElementById("models-status");
  try {
    const listed = await api("/v1/models");
    const models = Array.isArray(listed) ? listed : listed.models;
    const details = await Promise.all(models.map((m) => api(`/v1/models/${encodeURIComponent(m.name)}`)));
    const list = document.getElementById("model-list");
    list.replaceChildren(...details.map((d, i) => renderModel({ ...models[i], ...d })));
    status.textContent = `${models.length} model${models.length === 1 ? "" : "s"} loaded.`;
    for (const fn of listeners) fn(models);
  } catch (err) {
    status.textContent = `Could not list models: ${describeError(err)}`;
  }
}

function activeVersion(model) {
  return model.active_version ?? model.version ?? model.model?.version;
}

function renderModel(model) {
  const active = activeVersion(model);
  const card = document.createElement("article");
  card.className = "model";
  card.dataset.model = model.name;
  const heading = document.createElement("h3");
  heading.textContent = model.name;
  const facts = document.createElement("p");
  facts.className = "facts";
  facts.textContent = [
    `active v${active}`,
    model.backend && `backend ${model.backend}`,
    model.classes &&
    `${model.classes.length ?? model.classes} classes`,
  ].filter(Boolean).join(" · ");
  card.append(heading, facts, renderVersions(model, active));
  return card;
}

function renderVersions(model, active) {
  const table = document.createElement("table");
  table.className = "grid";
  table.innerHTML = `<caption class="sr">Versions of ${escape(model.name)}</caption><thead><tr>
    <th scope="col">Version</th><th scope="col">Created</th><th scope="col">Source</th>
    <th scope="col">mAP@0.5</th><th scope="col">mAP@0.5:0.95</th><th scope="col"><span class="sr">Action</span></th>
    </tr></thead><tbody></tbody>`;
  const versions = [...(model.versions ?? [])].sort((a, b) => b.version - a.version);
  for (const v of versions) {
    const tr = table.tBodies[0].insertRow();
    tr.dataset.version = String(v.version);
    const isActive = v.version === active;
    if (isActive) tr.className = "active";
    const metrics = v.metrics ?? v.meta?.metrics ?? {};
    const cells = [
      isActive ? `v${v.version} (active)` : `v${v.version}`,
      formatDate(v.created ?? v.created_at ?? v.meta?.created),
      describeSource(v.source ?? v.meta?.source),
      formatMetric(metrics.map50 ?? metrics["mAP@0.5"]),
      formatMetric(metrics.map ?? metrics.map50_95 ?? metrics["mAP@0.5:0.95"]),
    ];
    for (const text of cells) tr.insertCell().textContent = text;
    const action = tr.insertCell();
    if (!isActive) {
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = v.version < active ? "Roll back" : "Activate";
      button.setAttribute("aria-label", `${button.textContent} ${model.name} to version ${v.version}`);
      button.addEventListener("click", () => activate(model.name, v.version));
      action.append(button);
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

function describeSource(source) {
  if (!source) return "";
  if (typeof source === "string") return source;
  return source.job_id
    ? `fine-tune ${source.job_id}`
    : (source.type ?? source.kind ?? JSON.stringify(source));
}

function formatDate(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

function escape(text) {
  const span = document.createElement("span");
  span.textContent = text;
  return span.innerHTML;
}
