// A minimal line chart as inline SVG: one polyline per series, min/max ticks on both axes, a legend in HTML.
// The live fine-tune view redraws it on every progress event: it rebuilds its few nodes, no diffing.
const SVG_NS = "http://www.w3.org/2000/svg";
const WIDTH = 360;
const HEIGHT = 180;
const PAD = { left: 52, right: 10, top: 10, bottom: 24 };
const COLOURS = ["#d9480f", "#1971c2", "#2f9e44", "#9c36b5"];

function el(name, attrs = {}, text) {
  const node = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function extent(values) {
  let lo = Math.min(...values);
  let hi = Math.max(...values);
  if (lo === hi) [lo, hi] = [lo - (Math.abs(lo) || 1) * 0.05, hi + (Math.abs(hi) || 1) * 0.05];
  return [lo, hi];
}

function tick(value) {
  const abs = Math.abs(value);
  return abs !== 0 && (abs < 1e-3 || abs >= 1e4)
    ? value.toExponential(1)
    : Number(value.toPrecision(3)).toString();
}

/**
 * series: [{name, points: [[x, y], ...]}]; title names the chart for screen readers. `log` plots y on a log
 * scale, for values that differ by orders of magnitude (the bias group's warmup lr against the others).
 */
export function drawLineChart(container, series, { title, xLabel = "iteration", log = false } = {}) {
  const drawn = series.filter((s) => s.points.length > 0);
  const svg = el("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, class: "chart", role: "img" });
  const last = drawn.map((s) => `${s.name} ${tick(s.points.at(-1)[1])}`).join(", ");
  svg.setAttribute("aria-label", drawn.length ? `${title}: latest ${last}` : `${title}: no data yet`);
  const legend = document.createElement("ul");
  legend.className = "legend";
  container.replaceChildren(svg, legend);
  if (drawn.length === 0) {
    svg.append(
      el("text", { x: WIDTH / 2, y: HEIGHT / 2, "text-anchor": "middle", class: "tick" }, "no data yet"),
    );
    return;
  }
  const xs = extent(drawn.flatMap((s) => s.points.map((p) => p[0])));
  const values = drawn.flatMap((s) => s.points.map((p) => p[1]));
  // Zero (an lr at the start of warmup) has no logarithm: it is drawn at the smallest positive value.
  const floor = Math.min(...values.filter((v) => v > 0), 1);
  const fy = log ? (y) => Math.log10(Math.max(y, floor)) : (y) => y;
  const unfy = log ? (y) => 10 ** y : (y) => y;
  const ys = extent(values.map(fy));
  const sx = (x) => PAD.left + ((x - xs[0]) / (xs[1] - xs[0])) * (WIDTH - PAD.left - PAD.right);
  const sy = (y) =>
    HEIGHT - PAD.bottom - ((fy(y) - ys[0]) / (ys[1] - ys[0])) * (HEIGHT - PAD.top - PAD.bottom);
  const bottom = HEIGHT - PAD.bottom;
  svg.append(
    el("line", { x1: PAD.left, y1: PAD.top, x2: PAD.left, y2: bottom, class: "axis" }),
    el("line", { x1: PAD.left, y1: bottom, x2: WIDTH - PAD.right, y2: bottom, class: "axis" }),
    el("text", { x: PAD.left - 4, y: PAD.top + 8, "text-anchor": "end", class: "tick" }, tick(unfy(ys[1]))),
    el("text", { x: PAD.left - 4, y: bottom, "text-anchor": "end", class: "tick" }, tick(unfy(ys[0]))),
    el("text", { x: PAD.left, y: HEIGHT - 6, class: "tick" }, tick(xs[0])),
    el("text", { x: WIDTH - PAD.right, y: HEIGHT - 6, "text-anchor": "end", class: "tick" }, tick(xs[1])),
    el(
      "text",
      { x: (WIDTH + PAD.left) / 2, y: HEIGHT - 6, "text-anchor": "middle", class: "tick" },
      log ? `${xLabel} (y: log scale)` : xLabel,
    ),
  );
  drawn.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length];
    const points = s.points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
    // A dot on the newest value, so a series shows from its first point on.
    const [lx, ly] = s.points.at(-1);
    svg.append(
      el("polyline", { points, fill: "none", stroke: colour, "stroke-width": 2, "data-series": s.name }),
      el("circle", { cx: sx(lx), cy: sy(ly), r: 3, fill: colour }),
    );
    const item = document.createElement("li");
    item.innerHTML = `<span class="swatch" style="background:${colour}"></span>`;
    item.append(`${s.name}: ${tick(s.points.at(-1)[1])}`);
    legend.append(item);
  });
}
