// Wires the panels together: the API key field, model pickers fed by the registry, refreshes as jobs move.
import { api, apiKey, setApiKey } from "./api.js";
import { initDetect } from "./detect.js";
import { initFinetune, onJobUpdate } from "./finetune.js";
import { initFleet } from "./fleet.js";
import { TERMINAL } from "./job_state.js";
import { refreshJobs, updateJobRow } from "./jobs.js";
import { onModels, refreshModels } from "./models.js";
import { initReview, setReviewModels } from "./review.js";

function fillPicker(select, models) {
  const previous = select.value;
  select.replaceChildren(...models.map((m) => new Option(m.name, m.name)));
  if (models.some((m) => m.name === previous)) select.value = previous;
}

const key = document.getElementById("api-key");
key.value = apiKey();
key.addEventListener("change", () => setApiKey(key.value.trim()));
document.getElementById("key-form").addEventListener("submit", (e) => e.preventDefault());

onModels((models) => {
  fillPicker(document.getElementById("detect-model"), models);
  fillPicker(document.getElementById("ft-model"), models);
  setReviewModels(models);
});
onJobUpdate((job, statusChanged) => {
  if (!statusChanged) return updateJobRow(job);
  refreshJobs();
  if (TERMINAL.has(job.status)) refreshModels();
});
// Without a key, loopback is the only guard, and that is none behind a proxy: say so where the operator looks.
async function showAuthNote() {
  const server = await api("/v1/server");
  document.getElementById("auth-note").hidden = server.auth !== "loopback_only";
}

initDetect();
initFinetune();
initReview();
await Promise.all([refreshModels(), refreshJobs(), showAuthNote(), initFleet()]);
document.body.dataset.ready = "true";
