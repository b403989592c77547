/**
 * Fuzzing YOLO label parsing with seeded mutations of valid label files: every line must end up either as a row
 * or as a problem naming its line, never both and never neither; rows hold only what a label may (class id an
 * integer below nc, coordinates in 0..1); nothing throws. parseLabels is a pure function over bounded text, so
 * the cases run in-process (a few thousand in well under a second).
 */
import assert from "node:assert/strict";
import { LABEL_COLUMNS, parseLabels } from "../../../src/train/data/labels.ts";
import type { DatasetProblem } from "../../../src/train/data/problems.ts";
import { Rng } from "../../../src/train/data/rng.ts";

const CASES = 3000;
const NC = 3;
/** Characters and tokens on the edges of number parsing and line splitting. */
const TOKENS = [
  ..."0123456789.-+eE \t\r\n\v\f,_x",
  "\u00a0",
  "\u2028",
  "\u2212",
  "\u0663",
  "\0",
  "1e309",
  "-0",
  "NaN",
  "Infinity",
  "0x1",
  "0b1",
  "1.0000001",
  "0.99999999999",
  "2.0",
];
/** Seeds that once failed, with what they found; none so far. */
const REGRESSIONS: { seed: number; found: string }[] = [];

function validText(rng: Rng): string {
  const lines = Array.from({ length: 1 + Math.floor(rng.random() * 6) }, () => {
    const coords = Array.from({ length: 4 }, () => rng.random().toFixed(Math.floor(rng.random() * 8)));
    return [Math.floor(rng.random() * NC), ...coords].join(" ");
  });
  return lines.join(rng.random() < 0.3 ? "\r\n" : "\n") + (rng.random() < 0.5 ? "\n" : "");
}

function mutate(text: string, rng: Rng): string {
  let out = text;
  const edits = 1 + Math.floor(rng.random() * 5);
  for (let e = 0; e < edits; e++) {
    const at = Math.floor(rng.random() * (out.length + 1));
    const token = TOKENS[Math.floor(rng.random() * TOKENS.length)];
    const pick = rng.random();
    if (pick < 0.4) out = out.slice(0, at) + token + out.slice(at + 1);
    else if (pick < 0.7) out = out.slice(0, at) + token + out.slice(at);
    else if (pick < 0.85) out = out.slice(0, at) + out.slice(at + 1 + Math.floor(rng.random() * 4));
    else {
      const lines = out.split("\n");
      lines.splice(
        Math.floor(rng.random() * lines.length),
        0,
        lines[Math.floor(rng.random() * lines.length)],
      );
      out = lines.join("\n");
    }
  }
  return out;
}

function check(text: string, name: string) {
  const problems: DatasetProblem[] = [];
  const rows = parseLabels(text, NC, "labels/f.txt", problems);
  assert.ok(rows instanceof Float32Array && rows.length % LABEL_COLUMNS === 0, name);
  for (let r = 0; r < rows.length; r += LABEL_COLUMNS) {
    const [cls, ...coords] = rows.subarray(r, r + LABEL_COLUMNS);
    assert.ok(Number.isInteger(cls) && cls >= 0 && cls < NC, `${name}: class ${cls}`);
    assert.ok(coords.every((v) => v >= 0 && v <= 1), `${name}: coordinates ${coords}`);
  }
  const lines = text.split(/\r?\n/);
  const filled = lines.flatMap((l, i) => (l.trim() ? [i + 1] : []));
  const badLines = problems.map((p) => p.line!);
  assert.ok(problems.every((p) => p.file === "labels/f.txt" && p.message), name);
  assert.equal(new Set(badLines).size, badLines.length, `${name}: one problem per bad line`);
  assert.ok(badLines.every((l) => filled.includes(l)), `${name}: problems name non-empty lines`);
  // Every other non-empty line is a row of the output (duplicates collapse into one).
  const out = new Set<string>();
  for (let r = 0; r < rows.length; r += LABEL_COLUMNS) out.add(rows.subarray(r, r + LABEL_COLUMNS).join());
  for (const line of filled.filter((l) => !badLines.includes(l))) {
    const row = Float32Array.from(lines[line - 1].trim().split(/\s+/).map(Number)).join();
    assert.ok(out.has(row), `${name}: line ${line} '${lines[line - 1]}' is neither a row nor a problem`);
  }
  assert.ok(out.size <= filled.length - badLines.length, `${name}: more rows than good lines`);
}

Deno.test("label fuzz: mutated YOLO label files give valid rows or a problem per line, never a throw", () => {
  for (const { seed } of REGRESSIONS) check(mutate(validText(new Rng(seed)), new Rng(seed)), `seed ${seed}`);
  for (let seed = 1; seed <= CASES; seed++) {
    const rng = new Rng(seed);
    check(mutate(validText(rng), rng), `seed ${seed}`);
  }
});
