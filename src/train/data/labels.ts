/**
 * YOLO label files: one `cls cx cy w h` line per box, coordinates normalised to the image. Parsed into float32
 * rows as YOLOv5's verify_image_label does (np.float32), with every problem reported by line rather than the
 * first one thrown.
 */
import type { DatasetProblem } from "./problems.ts";

/** Boxes of one image: n rows of [cls, cx, cy, w, h] (normalised), float32 as YOLOv5 keeps them. */
export type LabelRows = Float32Array;

export const LABEL_COLUMNS = 5;

/**
 * Parses a label file's text. Problems (malformed line, class id not an integer in [0, nc), coordinate outside
 * 0..1) are appended to `problems` under `file`; the returned rows hold only the valid lines. Exact duplicate rows
 * are dropped and the rest reordered the way YOLOv5's `np.unique(lb, axis=0, return_index=True)` leaves them.
 */
export function parseLabels(text: string, nc: number, file: string, problems: DatasetProblem[]): LabelRows {
  const rows: number[][] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    const fields = line.split(/\s+/);
    const at = { file, line: i + 1 };
    if (fields.length !== LABEL_COLUMNS) {
      problems.push({ ...at, message: `expected 5 values 'cls cx cy w h', got ${fields.length}: '${line}'` });
      return;
    }
    const values = fields.map(Number);
    if (values.some((v) => !Number.isFinite(v))) {
      problems.push({ ...at, message: `not a number in '${line}'` });
      return;
    }
    const [cls, ...coords] = values;
    if (!Number.isInteger(cls) || cls < 0 || cls >= nc) {
      problems.push({
        ...at,
        message: `class id ${fields[0]} is not an integer in 0..${nc - 1} (nc = ${nc})`,
      });
      return;
    }
    if (coords.some((v) => v < 0 || v > 1)) {
      problems.push({
        ...at,
        message: `coordinates must be normalised to 0..1, got '${fields.slice(1).join(" ")}'`,
      });
      return;
    }
    rows.push(values.map(Math.fround));
  });
  return Float32Array.from(dedupe(rows).flat());
}

/** np.unique(rows, axis=0, return_index=True) indices, applied only when there are duplicates (as YOLOv5 does). */
function dedupe(rows: number[][]): number[][] {
  const order = rows.map((_, i) => i).sort((a, b) => compareRows(rows[a], rows[b]) || a - b);
  const firsts = order.filter((idx, k) => k === 0 || compareRows(rows[order[k - 1]], rows[idx]) !== 0);
  return firsts.length < rows.length ? firsts.map((i) => rows[i]) : rows;
}

function compareRows(a: number[], b: number[]): number {
  for (let k = 0; k < a.length; k++) if (a[k] !== b[k]) return a[k] - b[k];
  return 0;
}
