import assert from "node:assert/strict";
import { OnnxModel } from "../../src/onnx/model.ts";
import { buildTrainGraph } from "../../src/onnx/graph.ts";
import { inferShapes } from "../../src/onnx/graph_shapes.ts";
import { buildParamLayout, frozenParams, packParams, writeBackParams } from "../../src/train/param_layout.ts";
import { GOLDEN_FILES, goldenParams, YOLOV5N } from "../train/_golden.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, ...GOLDEN_FILES);
// Read only where the reference data is there: every test below is skipped otherwise.
let model!: OnnxModel;
let graph!: ReturnType<typeof buildTrainGraph>;
if (!REFERENCE.missing) {
  model = OnnxModel.parse(Deno.readFileSync(YOLOV5N));
  graph = buildTrainGraph(model);
}

referenceTest(REFERENCE, "buildTrainGraph cuts yolov5n at the three head convs and fuses every SiLU", () => {
  const count = (op: string) => graph.nodes.filter((n) => n.op === op).length;
  // The reference data's README: 60 convs, 57 SiLU (the 3 remaining sigmoids are the decode's), 3 SPPF pools, 2 upsamples.
  assert.equal(count("conv"), 60);
  assert.equal(count("silu"), 57);
  assert.equal(count("sigmoid"), 0);
  assert.equal(count("maxpool"), 3);
  assert.equal(count("resize2x"), 2);
  assert.equal(graph.heads.length, 3);
  assert.ok(graph.heads.every((h) => graph.nodes.some((n) => n.y === h && n.op === "conv")));
  assert.deepEqual(graph.yolo.strides, [8, 16, 32]);
});

referenceTest(REFERENCE, "inferShapes gives the golden head grids at 320", () => {
  const shapes = inferShapes(model, graph, 2, 320, 320);
  assert.deepEqual(graph.heads.map((h) => shapes.get(h)), [[2, 255, 40, 40], [2, 255, 20, 20], [
    2,
    255,
    10,
    10,
  ]]);
});

referenceTest(
  REFERENCE,
  "the flat layout follows initializer order with roles from graph usage, 4-aligned",
  () => {
    const layout = buildParamLayout(model, graph, new Set());
    const golden = goldenParams();
    assert.deepEqual(layout.entries.map((e) => e.name), golden.map((p) => p.name));
    for (const e of layout.entries) {
      assert.equal(e.offset % 4, 0);
      assert.equal(e.role, e.name.endsWith(".bias") ? "bias" : "weight");
      assert.equal(e.group, e.role === "bias" ? 0 : 1);
    }
    const flat = packParams(model, layout);
    const copy = OnnxModel.parse(model.toBytes());
    writeBackParams(copy, layout, flat.map((v) => v * 2));
    const w = layout.byName.get("model.24.m.2.bias")!;
    assert.deepEqual(copy.getInitializer(w.name).data, model.getInitializer(w.name).data.map((v) => v * 2));
  },
);

referenceTest(
  REFERENCE,
  "freeze N matches train.py's model.k. prefixes as substrings; a list freezes exactly those layers",
  () => {
    const f10 = frozenParams(graph, 10);
    assert.ok(f10.has("model.9.cv2.conv.weight") && f10.has("model.0.conv.bias"));
    assert.ok(!f10.has("model.10.conv.weight") && !f10.has("model.13.cv1.conv.weight"));
    const f24 = frozenParams(graph, 24);
    assert.deepEqual(
      graph.params.filter((p) => !f24.has(p.name)).map((p) => p.name).filter((n) =>
        !n.startsWith("model.24.")
      ),
      [],
    );
    const some = frozenParams(graph, [1, 10]);
    assert.ok(
      some.has("model.1.conv.weight") && some.has("model.10.conv.bias") &&
        !some.has("model.13.m.0.cv1.conv.bias"),
    );
    assert.equal(frozenParams(graph, 0).size, 0);
  },
);
