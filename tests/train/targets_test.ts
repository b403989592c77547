import assert from "node:assert/strict";
import { buildTargets } from "../../src/train/targets.ts";
import type { LossLayer } from "../../src/train/targets.ts";
import { referenceBuildTargets } from "../../src/reference/targets.ts";
import { randomCase } from "./_cases.ts";

const layer = (n: number, anchors: [number, number][]): LossLayer => ({ nx: n, ny: n, anchors });
const row = (b: number, c: number, x: number, y: number, w: number, h: number) => [b, c, x, y, w, h];

Deno.test("buildTargets emits own, left and upper cells slot-major for a target in a cell's top-left quarter", () => {
  // gx = 2.25, gy = 3.25 on an 8x8 grid: own (2,3), left (1,3), up (2,2); one anchor of the same size.
  const [t] = buildTargets(
    new Float32Array(row(0, 1, 2.25 / 8, 3.25 / 8, 0.25, 0.25)),
    [layer(8, [[2, 2]])],
    4,
  );
  assert.equal(t.n, 3);
  assert.deepEqual([...t.gi], [2, 1, 2]);
  assert.deepEqual([...t.gj], [3, 3, 2]);
  assert.deepEqual([...t.tbox.subarray(0, 4)], [0.25, 0.25, 2, 2]);
  assert.deepEqual([...t.tbox.subarray(4, 8)], [1.25, 0.25, 2, 2]);
  assert.deepEqual([...t.tbox.subarray(8, 12)], [0.25, 1.25, 2, 2]);
  assert.deepEqual([...t.tcls], [1, 1, 1]);
});

Deno.test("buildTargets: integer gx fires both x neighbours and the right one duplicates the own cell", () => {
  const [t] = buildTargets(new Float32Array(row(0, 0, 0.5, 0.7, 0.25, 0.25)), [layer(8, [[2, 2]])], 4);
  // gx = 4 exactly: slot j -> gi 3, slot l -> trunc(4.5) = 4 = own cell; gy = 5.6 fires slot m (lower).
  const cells = [...t.gi].map((gi, k) => `${gi},${t.gj[k]}`);
  assert.deepEqual(cells, ["4,5", "3,5", "4,5", "4,6"]);
  // The duplicate (slot l) is written after the own cell, so it owns the objectness target.
  assert.deepEqual([...t.objWinner], [0, 1, 1, 1]);
});

Deno.test("buildTargets: the anchor ratio test is strict at anchor_t and the order is anchor-major", () => {
  // Anchors 1 and 4 grid units; box w = h = 4 grid units: ratio 4 vs anchor 1 (rejected, strict), 1 vs anchor 4.
  const targets = new Float32Array([
    ...row(0, 0, 0.55, 0.55, 0.5, 0.5),
    ...row(1, 2, 0.55, 0.55, 0.1249, 0.1249),
  ]);
  const [t] = buildTargets(targets, [layer(8, [[1, 1], [4, 4]])], 4);
  // Target 0 only matches anchor 1; target 1 (w = 0.9992) matches anchor 0 only (4/0.9992 > 4 for anchor 1).
  const own = [...t.a].map((a, k) => `${a}:${t.b[k]}`).slice(0, 2);
  assert.deepEqual(own, ["0:1", "1:0"]);
});

Deno.test("buildTargets: border targets get fewer cells and x = 1.0 is clamped into the grid with its box", () => {
  const [t] = buildTargets(new Float32Array(row(0, 0, 1.0, 0.9, 0.25, 0.25)), [layer(4, [[1, 1]])], 4);
  // gx = 4: own cell trunc(4) = 4 clamps to 3, and tx = gx - clamped gi = 1; gxi = 0 gives no right neighbour.
  assert.equal(t.gi[0], 3);
  assert.equal(t.tbox[0], 1);
  assert.ok([...t.gi].every((gi) => gi <= 3) && [...t.gj].every((gj) => gj <= 3));
});

Deno.test("buildTargets emits nothing without labels", () => {
  const out = buildTargets(new Float32Array(0), [layer(4, [[1, 1]]), layer(2, [[2, 2]])], 4);
  assert.deepEqual(out.map((t) => t.n), [0, 0]);
});

Deno.test("buildTargets: of two labels in one cell and anchor, the later one owns the objectness target", () => {
  const targets = new Float32Array([
    ...row(0, 0, 0.33, 0.33, 0.25, 0.25),
    ...row(0, 1, 0.36, 0.36, 0.25, 0.25),
  ]);
  const [t] = buildTargets(targets, [layer(8, [[2, 2]])], 4);
  const own = [0, 1].map((k) => `${t.gi[k]},${t.gj[k]}:${t.tcls[k]}:${t.objWinner[k]}`);
  // Both centres fall in cell (2, 2); slot 0 emits target 0 then target 1, and only the last write counts.
  assert.deepEqual(own, ["2,2:0:0", "2,2:1:1"]);
});

Deno.test("buildTargets matches the plain-loop reference entry for entry on random labels and grid-edge centres", () => {
  for (const seed of [1, 2, 3]) {
    const c = randomCase(seed, { nc: 3, bs: 2, grids: [8, 4, 2], nt: 12 });
    // Centres on cell edges and the image border exercise both-neighbour duplicates and the clamp.
    const targets = new Float32Array([
      ...c.targets,
      ...row(1, 2, 0.5, 0.25, 0.2, 0.3),
      ...row(0, 1, 1.0, 1.0, 0.25, 0.25),
      ...row(1, 0, 0, 0.125, 0.1, 0.1),
    ]);
    const got = buildTargets(targets, c.layers, 4);
    const want = referenceBuildTargets(targets, c.layers, 4);
    got.forEach((t, i) => {
      const entries = Array.from({ length: t.n }, (_, k) => ({
        b: t.b[k],
        a: t.a[k],
        gj: t.gj[k],
        gi: t.gi[k],
        tbox: [...t.tbox.subarray(4 * k, 4 * k + 4)],
        anchor: [...t.anchor.subarray(2 * k, 2 * k + 2)],
        tcls: t.tcls[k],
      }));
      assert.deepEqual(entries, want[i], `seed ${seed} layer ${i}`);
    });
  }
});
