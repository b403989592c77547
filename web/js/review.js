// The review page of the site loop: a queue of captured frames (filtered by model, status and camera), each
// shown with the model's boxes as proposals (or its labels once labelled) for a person to correct, then accept
// (PUT labels), reject or skip; progress is the model's labelled / new counts per split. Every action has a
// key, so a queue goes by without the mouse.
import { api, apiKey, describeError } from "./api.js";
import { BoxEditor } from "./box_editor.js";
import { finetuneConfig, watchJob } from "./finetune.js";
import { formatMetric } from "./format.js";
import { shortId } from "./job_state.js";

const el = (id) => document.getElementById(id);
const PAGE = 100;
/** Rounds shown: the newest fine-tuned versions. */
const ROUNDS = 5;

let classNames = new Map();
let queue = [];
let position = -1;
let editor;

/** Fills the model picker; the class names per model feed the class picker and the box tags. */
export function setReviewModels(models) {
  classNames = new Map(models.map((m) => [m.name, m.names]));
  const select = el("rv-model");
  const previous = select.value;
  select.replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  if (classNames.has(previous)) select.value = previous;
  // A finished round is a new version: the models list is refreshed then, and the rounds with it.
  if (select.value) refreshRounds();
}

function names() {
  return classNames.get(el("rv-model").value) ?? [];
}

function fillClasses() {
  el("rv-class").replaceChildren(...names().map((n, i) => new Option(`${i + 1}. ${n}`, String(i))));
}

async function refreshProgress() {
  const model = el("rv-model").value;
  if (!model) return;
  try {
    const s = await api(`/v1/captures/summary?model=${encodeURIComponent(model)}`);
    const labelled = s.labelled.train + s.labelled.val;
    el("rv-progress").textContent = `${model}: ${s.new} new, ${labelled} labelled ` +
      `(train ${s.labelled.train}, val ${s.labelled.val}), ${s.rejected} rejected`;
    el("rv-progress").dataset.new = String(s.new);
    el("rv-progress").dataset.labelled = String(labelled);
    el("rv-train").textContent = `Fine-tune from ${labelled} labelled frame${labelled === 1 ? "" : "s"}`;
    el("rv-train").disabled = s.labelled.train === 0;
  } catch (err) {
    el("rv-progress").textContent = `Could not count captures: ${describeError(err)}`;
  }
}

/** "base → result" of a metric pair a fine-tune recorded in its version's metrics. */
function beforeAfter(metrics, base, result) {
  return `${formatMetric(metrics?.[base])} → ${formatMetric(metrics?.[result])}`;
}

/** The model's last rounds: its newest fine-tuned versions with their base's and their own metrics. */
async function refreshRounds() {
  const model = el("rv-model").value;
  const table = el("rv-rounds");
  let versions;
  try {
    versions = (await api(`/v1/models/${encodeURIComponent(model)}/versions`)).versions;
  } catch {
    table.hidden = true;
    return;
  }
  const rounds = versions.filter((v) => v.source.type === "finetune").slice(-ROUNDS).reverse();
  table.tBodies[0].replaceChildren();
  for (const v of rounds) {
    const tr = table.tBodies[0].insertRow();
    tr.dataset.version = String(v.version);
    for (
      const text of [
        `v${v.version}`,
        v.parent === null ? "–" : `v${v.parent}`,
        beforeAfter(v.metrics, "base_map50_95", "map50_95"),
        beforeAfter(v.metrics, "base_regression_map50_95", "regression_map50_95"),
      ]
    ) tr.insertCell().textContent = text;
  }
  table.hidden = rounds.length === 0;
}

async function loadQueue() {
  const params = new URLSearchParams({ model: el("rv-model").value, limit: String(PAGE) });
  if (el("rv-status").value) params.set("status", el("rv-status").value);
  if (el("rv-camera").value.trim()) params.set("camera", el("rv-camera").value.trim());
  fillClasses();
  refreshRounds();
  try {
    queue = (await api(`/v1/captures?${params}`)).captures;
  } catch (err) {
    el("rv-line").textContent = `Could not list captures: ${describeError(err)}`;
    return;
  }
  renderQueue();
  show(queue.length ? 0 : -1);
  await refreshProgress();
}

function renderQueue() {
  el("rv-queue").replaceChildren(...queue.map((c, i) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "link";
    button.dataset.id = c.id;
    button.dataset.status = c.status;
    button.textContent = `${c.time.slice(11, 19)} ${c.source.camera ?? c.source.route} · ${c.status}`;
    button.addEventListener("click", () => show(i));
    if (i === position) button.setAttribute("aria-current", "true");
    item.append(button);
    return item;
  }));
}

/**
 * Captured frames need the key like writes do, and an <img src> cannot send it: the image is fetched with the
 * key and shown from a blob URL (the previous one freed).
 */
async function showImage(id) {
  const img = el("rv-img");
  const headers = apiKey() ? { Authorization: `Bearer ${apiKey()}` } : {};
  try {
    const res = await fetch(`/v1/captures/${id}/image`, { headers });
    if (!res.ok) throw new Error(`${res.status} ${res.statusText}`);
    const url = URL.createObjectURL(await res.blob());
    if (queue[position]?.id !== id) return URL.revokeObjectURL(url); // moved on meanwhile
    if (img.src.startsWith("blob:")) URL.revokeObjectURL(img.src);
    img.src = url;
  } catch (err) {
    el("rv-line").textContent = `Could not load the frame: ${err.message}`;
  }
}

function show(index) {
  position = index;
  const capture = queue[index];
  el("rv-stage").hidden = !capture;
  el("review").dataset.capture = capture?.id ?? "";
  for (const id of ["rv-accept", "rv-reject", "rv-skip", "rv-delete"]) el(id).disabled = !capture;
  if (!capture) {
    el("rv-line").textContent = queue.length ? "End of the queue." : "No captures match.";
    renderQueue();
    return;
  }
  showImage(capture.id);
  const boxes = capture.labels ?? capture.predictions;
  editor.load(boxes, capture.width, capture.height, names());
  el("rv-line").textContent =
    `Capture ${index + 1} of ${queue.length}: ${capture.width}x${capture.height}, ` +
    `${capture.source.route}${capture.source.camera ? `, camera ${capture.source.camera}` : ""}, ` +
    `v${capture.version}, ${capture.status}` + (capture.labels ? "" : ` (${boxes.length} proposals)`);
  renderQueue();
}

async function act(work, done) {
  const capture = queue[position];
  if (!capture) return;
  try {
    queue[position] = await work(capture);
    el("review").dataset.last = `${done} ${capture.id}`;
    await refreshProgress();
    show(position + 1 < queue.length ? position + 1 : -1);
  } catch (err) {
    el("rv-line").textContent = `Could not save: ${describeError(err)}`;
  }
}

const accept = () =>
  act((c) =>
    api(`/v1/captures/${c.id}/labels`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ labels: editor.labels() }),
    }), "accepted");
const reject = () => act((c) => api(`/v1/captures/${c.id}/reject`, { method: "POST" }), "rejected");
const skip = () => show(position + 1 < queue.length ? position + 1 : -1);

/** The page's keys, unless the person is typing in a field. */
function onKey(e) {
  if (e.target.closest?.("input, select, textarea") || e.ctrlKey || e.metaKey || e.altKey) return;
  // Keys act only while the person works in the review panel (or on the picture, which takes no focus).
  const active = document.activeElement;
  if (!queue[position] || !(active === document.body || el("review").contains(active))) return;
  // Enter on another button is that button's click.
  if (e.key === "Enter" && e.target.closest?.("button, a")) return;
  const key = e.key.toLowerCase();
  if (/^[1-9]$/.test(key) && Number(key) <= names().length) {
    el("rv-class").value = String(Number(key) - 1);
    editor.setClass(Number(key) - 1);
  } else if (key === "a" || key === "enter") accept();
  else if (key === "r") reject();
  else if (key === "s" || key === "arrowright") skip();
  else if (key === "arrowleft") show(Math.max(0, position - 1));
  else if (key === "delete" || key === "backspace") editor.deleteSelected();
  else if (key === "escape") editor.select(-1);
  else return;
  e.preventDefault();
}

/** Starts a fine-tune of the model on its labelled captures and shows it in the fine-tune live view. */
async function trainFromCaptures() {
  const model = el("rv-model").value;
  const status = el("rv-train-status");
  el("rv-train").disabled = true;
  try {
    const job = await api(`/v1/models/${encodeURIComponent(model)}/finetune`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ config: finetuneConfig(), source: "captures" }),
    });
    status.textContent = `Job ${shortId(job.id)} accepted; follow it under Fine-tune.`;
    watchJob(job);
  } catch (err) {
    status.textContent = `Could not start the fine-tune: ${describeError(err)}`;
  } finally {
    await refreshProgress();
  }
}

export function initReview() {
  editor = new BoxEditor(el("rv-overlay"), () => {
    const box = editor.boxes[editor.selected];
    if (box) el("rv-class").value = String(box.class_id);
  });
  el("review-form").addEventListener("submit", (e) => {
    e.preventDefault();
    loadQueue();
  });
  el("rv-model").addEventListener("change", loadQueue);
  el("rv-class").addEventListener("change", () => editor.setClass(Number(el("rv-class").value)));
  el("rv-accept").addEventListener("click", accept);
  el("rv-reject").addEventListener("click", reject);
  el("rv-skip").addEventListener("click", skip);
  el("rv-delete").addEventListener("click", () => editor.deleteSelected());
  el("rv-train").addEventListener("click", trainFromCaptures);
  document.addEventListener("keydown", onKey);
}
