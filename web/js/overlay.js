// Boxes are SVG elements in image-pixel coordinates (viewBox = the image size the API reports), so the
// browser scales them with the picture at any width, and each box carries its detection as data attributes.
const SVG_NS = "http://www.w3.org/2000/svg";

export function classColour(classId) {
  return `hsl(${(classId * 47) % 360} 85% 45%)`;
}

function svg(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export function drawDetections(overlay, result) {
  const { width, height } = result.image;
  overlay.replaceChildren();
  overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
  overlay.setAttribute("preserveAspectRatio", "none");
  const stroke = Math.max(2, Math.round(Math.max(width, height) / 300));
  const fontSize = Math.max(12, Math.round(Math.max(width, height) / 45));
  result.detections.forEach((d, i) => {
    const { x1, y1, x2, y2 } = d.box;
    const colour = classColour(d.class_id);
    const label = `${d.class_name} ${d.confidence.toFixed(2)}`;
    const group = svg("g", { class: "det", "data-index": i });
    const rect = svg("rect", {
      class: "box",
      x: x1,
      y: y1,
      width: x2 - x1,
      height: y2 - y1,
      stroke: colour,
      "stroke-width": stroke,
      fill: "none",
      "data-class-id": d.class_id,
      "data-class-name": d.class_name,
      "data-confidence": d.confidence,
      "data-x1": x1,
      "data-y1": y1,
      "data-x2": x2,
      "data-y2": y2,
    });
    const title = svg("title", {});
    title.textContent = label;
    rect.append(title);
    // The tag sits above the box, moved inside the picture where the box touches the top or right edge.
    const tagWidth = label.length * fontSize * 0.6 + 8;
    const tagX = Math.max(0, Math.min(x1, width - tagWidth));
    const tagY = y1 > fontSize * 1.4 ? y1 - fontSize * 1.3 : y1;
    const tag = svg("rect", { x: tagX, y: tagY, width: tagWidth, height: fontSize * 1.3, fill: colour });
    const text = svg("text", { x: tagX + 4, y: tagY + fontSize, "font-size": fontSize, fill: "#fff" });
    text.textContent = label;
    group.append(rect, tag, text);
    overlay.append(group);
  });
  overlay.setAttribute("aria-label", `${result.detections.length} detected boxes`);
}
