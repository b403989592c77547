import assert from "node:assert/strict";
import { parseLabels } from "../../../src/train/data/labels.ts";
import type { DatasetProblem } from "../../../src/train/data/problems.ts";

Deno.test("parseLabels reads float32 rows and reports each bad line by number", () => {
  const problems: DatasetProblem[] = [];
  const text = [
    "0 0.5 0.5 0.2 0.2",
    "",
    "2 0.1 0.2 0.3", // 4 columns
    "3 0.1 0.2 0.3 0.4", // class 3 >= nc
    "1 0.1 1.2 0.3 0.4", // y outside 0..1
    "1.5 0.1 0.2 0.3 0.4", // fractional class id
    "1 0.1 abc 0.3 0.4",
    "1 0.25 0.75 1 1",
  ].join("\r\n");
  const rows = parseLabels(text, 3, "labels/x.txt", problems);
  assert.deepEqual(Array.from(rows), [0, 0.5, 0.5, 0.2, 0.2, 1, 0.25, 0.75, 1, 1].map(Math.fround));
  assert.deepEqual(problems.map((p) => [p.file, p.line]), [3, 4, 5, 6, 7].map((l) => ["labels/x.txt", l]));
  assert.match(problems[1].message, /class id 3/);
  assert.match(problems[2].message, /0\.\.1/);
});

Deno.test("parseLabels drops exact duplicates in np.unique row order, and only then reorders", () => {
  const problems: DatasetProblem[] = [];
  const unique = parseLabels("1 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n", 2, "a.txt", problems);
  assert.deepEqual(Array.from(unique.subarray(0, 1)), [1]);
  const dup = parseLabels("1 0.5 0.5 0.1 0.1\n0 0.2 0.2 0.1 0.1\n1 0.5 0.5 0.1 0.1\n", 2, "a.txt", problems);
  assert.equal(dup.length, 10);
  assert.deepEqual([dup[0], dup[5]], [0, 1]);
  assert.deepEqual(problems, []);
});
