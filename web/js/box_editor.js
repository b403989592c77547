// An editable set of boxes over a picture: an SVG in image-pixel coordinates (viewBox = the image size) so the
// boxes scale with the picture. Pointer events serve mouse, pen and touch alike: drag on empty ground draws a
// box, drag a box to move it, drag a corner handle to resize it; a tap selects. Boxes are whole pixels,
// clipped to the image, as the labels API takes them.
import { classColour } from "./overlay.js";

const SVG_NS = "http://www.w3.org/2000/svg";
/** A drag shorter than this many image pixels on each side is a tap, not a new box. */
const MIN_BOX = 3;
const CORNERS = ["tl", "tr", "bl", "br"];

function svg(name, attrs) {
  const el = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

export class BoxEditor {
  /** `onChange()` runs after every edit and selection change. */
  constructor(overlay, onChange) {
    this.overlay = overlay;
    this.onChange = onChange;
    this.boxes = [];
    this.selected = -1;
    this.names = [];
    this.width = 1;
    this.height = 1;
    this.drag = null;
    overlay.addEventListener("pointerdown", (e) => this.down(e));
    overlay.addEventListener("pointermove", (e) => this.move(e));
    overlay.addEventListener("pointerup", (e) => this.up(e));
    overlay.addEventListener("pointercancel", (e) => this.up(e));
  }

  /** Shows `boxes` ([{class_id, box}]) over a `width` x `height` picture with class `names`. */
  load(boxes, width, height, names) {
    this.boxes = boxes.map((b) => ({ class_id: b.class_id, box: { ...b.box } }));
    this.width = width;
    this.height = height;
    this.names = names;
    this.selected = -1;
    this.overlay.setAttribute("viewBox", `0 0 ${width} ${height}`);
    this.overlay.setAttribute("preserveAspectRatio", "none");
    this.render();
  }

  /** The boxes as the labels API takes them. */
  labels() {
    return this.boxes.map((b) => ({ class_id: b.class_id, box: { ...b.box } }));
  }

  select(index) {
    this.selected = index;
    this.render();
  }

  deleteSelected() {
    if (this.selected < 0) return;
    this.boxes.splice(this.selected, 1);
    this.selected = -1;
    this.render();
  }

  setClass(classId) {
    if (this.selected < 0) return;
    this.boxes[this.selected].class_id = classId;
    this.render();
  }

  /** The pointer's position in image pixels, clipped to the image. */
  point(e) {
    const m = this.overlay.getScreenCTM().inverse();
    const p = new DOMPoint(e.clientX, e.clientY).matrixTransform(m);
    return { x: Math.min(this.width, Math.max(0, p.x)), y: Math.min(this.height, Math.max(0, p.y)) };
  }

  down(e) {
    if (e.button !== 0) return;
    e.preventDefault();
    const at = this.point(e);
    const target = e.target;
    const index = Number(target.closest?.("[data-index]")?.getAttribute("data-index") ?? -1);
    if (target.dataset?.corner && index >= 0) {
      this.drag = { kind: "resize", index, corner: target.dataset.corner };
    } else if (index >= 0) {
      this.drag = { kind: "move", index, from: at, start: { ...this.boxes[index].box } };
    } else {
      const classId = Number(document.getElementById("rv-class")?.value ?? 0);
      this.boxes.push({ class_id: classId, box: { x1: at.x, y1: at.y, x2: at.x, y2: at.y } });
      this.drag = { kind: "draw", index: this.boxes.length - 1, from: at };
    }
    this.selected = this.drag.index;
    this.overlay.setPointerCapture(e.pointerId);
    this.render();
  }

  move(e) {
    if (!this.drag) return;
    const at = this.point(e);
    const { kind, index } = this.drag;
    const box = this.boxes[index].box;
    if (kind === "draw") {
      const { from } = this.drag;
      Object.assign(box, {
        x1: Math.min(from.x, at.x),
        y1: Math.min(from.y, at.y),
        x2: Math.max(from.x, at.x),
        y2: Math.max(from.y, at.y),
      });
    } else if (kind === "move") {
      const { from, start } = this.drag;
      const dx = Math.min(this.width - start.x2, Math.max(-start.x1, at.x - from.x));
      const dy = Math.min(this.height - start.y2, Math.max(-start.y1, at.y - from.y));
      Object.assign(box, { x1: start.x1 + dx, y1: start.y1 + dy, x2: start.x2 + dx, y2: start.y2 + dy });
    } else {
      const { corner } = this.drag;
      if (corner.includes("l")) box.x1 = Math.min(at.x, box.x2 - 1);
      if (corner.includes("r")) box.x2 = Math.max(at.x, box.x1 + 1);
      if (corner.includes("t")) box.y1 = Math.min(at.y, box.y2 - 1);
      if (corner.includes("b")) box.y2 = Math.max(at.y, box.y1 + 1);
    }
    this.render();
  }

  up(e) {
    if (!this.drag) return;
    const { kind, index } = this.drag;
    this.drag = null;
    if (this.overlay.hasPointerCapture(e.pointerId)) this.overlay.releasePointerCapture(e.pointerId);
    const box = this.boxes[index].box;
    for (const k of ["x1", "y1", "x2", "y2"]) box[k] = Math.round(box[k]);
    if (kind === "draw" && (box.x2 - box.x1 < MIN_BOX || box.y2 - box.y1 < MIN_BOX)) {
      this.boxes.splice(index, 1);
      this.selected = -1;
    }
    this.render();
  }

  render() {
    const stroke = Math.max(1, Math.round(Math.max(this.width, this.height) / 250));
    const handle = stroke * 4;
    const fontSize = Math.max(8, Math.round(Math.max(this.width, this.height) / 30));
    this.overlay.replaceChildren(...this.boxes.map((b, i) => {
      const { x1, y1, x2, y2 } = b.box;
      const colour = classColour(b.class_id);
      const group = svg("g", { class: "edit-box", "data-index": i });
      if (i === this.selected) group.classList.add("selected");
      const rect = svg("rect", {
        class: "box",
        x: x1,
        y: y1,
        width: x2 - x1,
        height: y2 - y1,
        stroke: colour,
        "stroke-width": i === this.selected ? stroke * 2 : stroke,
        fill: i === this.selected ? "rgb(255 255 255 / 0.15)" : "transparent",
        "data-class-id": b.class_id,
        "data-x1": x1,
        "data-y1": y1,
        "data-x2": x2,
        "data-y2": y2,
      });
      const text = svg("text", {
        x: x1 + 2,
        y: Math.max(fontSize, y1 - 2),
        "font-size": fontSize,
        fill: colour,
      });
      text.textContent = this.names[b.class_id] ?? String(b.class_id);
      group.append(rect, text);
      if (i === this.selected) {
        for (const corner of CORNERS) {
          const cx = corner.includes("l") ? x1 : x2, cy = corner.includes("t") ? y1 : y2;
          group.append(svg("rect", {
            class: "handle",
            "data-corner": corner,
            x: cx - handle / 2,
            y: cy - handle / 2,
            width: handle,
            height: handle,
            fill: colour,
          }));
        }
      }
      return group;
    }));
    this.overlay.setAttribute("aria-label", `${this.boxes.length} boxes`);
    this.onChange();
  }
}
