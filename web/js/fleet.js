// The fleet panel (servers started with --nats): every node, when it was last heard of, what it serves and how
// far behind the registry KV it is, and its detects of the last minute per version (count and median latency),
// so a canary's numbers stand beside the other nodes' before it is promoted. Hidden on a box that runs alone (GET /v1/fleet is not mounted there).
import { api, describeError } from "./api.js";

/** How often the panel refreshes: nodes write their records every 5 s. */
const REFRESH_MS = 5000;

function cell(text) {
  const td = document.createElement("td");
  td.textContent = text;
  return td;
}

/** "tiny v2: 120 (8.1 ms)" per model version the node detected on in the last minute. */
function detects(summary) {
  if (summary.length === 0) return "none";
  return summary.map((d) => `${d.model} v${d.version}: ${d.count} (${d.p50_ms.toFixed(1)} ms)`).join(", ");
}

function renderNode(node, self) {
  const row = document.createElement("tr");
  row.dataset.node = node.name;
  const serving = Object.entries(node.active).map(([name, v]) => `${name} v${v}`).join(", ");
  row.append(
    cell(node.name === self ? `${node.name} (this node)` : node.name),
    cell(new Date(node.last_seen).toLocaleTimeString()),
    cell(node.backend),
    cell(node.adapter ?? "none"),
    cell(node.jobs ? "on" : "off"),
    cell(serving || "nothing"),
    cell(String(node.kv_lag)),
    cell(detects(node.detect ?? [])),
  );
  return row;
}

export async function refreshFleet() {
  const section = document.getElementById("fleet");
  const status = document.getElementById("fleet-status");
  let report;
  try {
    report = await api("/v1/fleet");
  } catch (err) {
    if (err.status === 404) return false; // no fleet: the panel stays hidden
    status.textContent = `Could not read the fleet: ${describeError(err)}`;
    return true;
  }
  section.hidden = false;
  status.textContent = report.connected
    ? `Fleet ${report.fleet}: ${report.nodes.length} node${report.nodes.length === 1 ? "" : "s"}.`
    : `Fleet ${report.fleet}: this node cannot reach NATS; it serves its local copy and refuses changes.`;
  document.querySelector("#fleet-nodes tbody").replaceChildren(
    ...report.nodes.map((n) => renderNode(n, report.node)),
  );
  return true;
}

/** Show the panel and keep it fresh when this server is in a fleet. */
export async function initFleet() {
  if (await refreshFleet()) setInterval(refreshFleet, REFRESH_MS);
}
