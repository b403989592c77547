// The detect panel: one image, re-sent when the model or a threshold changes; the newest answer is drawn.
import { api, describeError } from "./api.js";
import { classColour, drawDetections } from "./overlay.js";

const RERUN_DELAY_MS = 250;

export function initDetect() {
  const form = document.getElementById("detect-form");
  const model = document.getElementById("detect-model");
  const fileInput = document.getElementById("image-file");
  const drop = document.getElementById("drop");
  const status = document.getElementById("detect-status");
  let file = null;
  let imageUrl = null;
  let latest = 0;
  let timer = 0;

  async function run() {
    if (!file || !model.value) return;
    const ticket = ++latest;
    const params = new URLSearchParams({ conf: form.conf.value, iou: form.iou.value });
    status.textContent = `Detecting on ${file.name}…`;
    try {
      const result = await api(`/v1/models/${encodeURIComponent(model.value)}/detect?${params}`, {
        method: "POST",
        body: file,
        headers: { "Content-Type": file.type || "application/octet-stream" },
      });
      if (ticket !== latest) return;
      show(result);
      const n = result.detections.length;
      status.textContent = `${n} object${
        n === 1 ? "" : "s"
      } found by ${result.model.name} v${result.model.version}.`;
    } catch (err) {
      if (ticket === latest) status.textContent = `Detect failed: ${describeError(err)}`;
    }
  }

  function show(result) {
    const img = document.getElementById("stage-img");
    if (img.dataset.src !== imageUrl) {
      img.src = imageUrl;
      img.dataset.src = imageUrl;
    }
    img.alt = `${file.name}, ${result.image.width}×${result.image.height}`;
    document.getElementById("stage").hidden = false;
    drawDetections(document.getElementById("overlay"), result);
    renderTable(result.detections);
    renderTimings(result.timings_ms ?? {});
  }

  function choose(picked) {
    if (!picked) return;
    file = picked;
    if (imageUrl) URL.revokeObjectURL(imageUrl);
    imageUrl = URL.createObjectURL(picked);
    run();
  }

  function later() {
    clearTimeout(timer);
    timer = setTimeout(run, RERUN_DELAY_MS);
  }

  fileInput.addEventListener("change", () => choose(fileInput.files[0]));
  for (const name of ["conf", "iou"]) {
    form[name].addEventListener("input", () => {
      document.getElementById(`${name}-out`).textContent = Number(form[name].value).toFixed(2);
      later();
    });
  }
  model.addEventListener("change", run);
  form.addEventListener("submit", (e) => e.preventDefault());
  drop.addEventListener("dragover", (e) => {
    e.preventDefault();
    drop.classList.add("over");
  });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    choose(e.dataTransfer.files[0]);
  });
}

function renderTable(detections) {
  const table = document.getElementById("detections");
  const rows = detections.map((d, i) => {
    const tr = document.createElement("tr");
    tr.className = "detection";
    tr.dataset.index = String(i);
    const swatch = `<span class="swatch" style="background:${classColour(d.class_id)}"></span>`;
    const { x1, y1, x2, y2 } = d.box;
    tr.innerHTML = `<td>${swatch}</td><td>${d.confidence.toFixed(3)}</td><td>${
      [x1, y1, x2, y2].map((v) => v.toFixed(0)).join(", ")
    }</td>`;
    tr.cells[0].append(d.class_name);
    return tr;
  });
  table.tBodies[0].replaceChildren(...rows);
  table.hidden = false;
}

function renderTimings(timings) {
  const list = document.getElementById("timings");
  list.replaceChildren();
  for (const [name, ms] of Object.entries(timings)) {
    const dt = document.createElement("dt");
    dt.textContent = name.replaceAll("_", " ");
    const dd = document.createElement("dd");
    dd.textContent = `${Number(ms).toFixed(1)} ms`;
    list.append(dt, dd);
  }
}
