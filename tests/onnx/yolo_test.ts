import assert from "node:assert/strict";
import { OnnxModel } from "../../src/onnx/model.ts";
import { inspectYolo, MAX_CLASSES, MAX_INPUT_SIDE } from "../../src/onnx/yolo.ts";
import { addModel, encodeModel, node, valueInfo } from "./_models.ts";
import { tinyYolo } from "./_tiny_yolo.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "README.md", "models/yolov5n.onnx");

/** The anchors the reference data's README documents for the export: "P3/8 [10,13, 16,30, 33,23], P4/16 [...], ...". */
async function readmeAnchors(): Promise<{ strides: number[]; anchors: number[][] }> {
  const text = await Deno.readTextFile(REFERENCE.url("README.md"));
  const found = [...text.matchAll(/P\d\/(\d+) \[([\d, ]+)\]/g)];
  assert.equal(found.length, 3, "README lists three anchor sets");
  return { strides: found.map((m) => Number(m[1])), anchors: found.map((m) => m[2].split(",").map(Number)) };
}

referenceTest(
  REFERENCE,
  "inspectYolo() recovers the ultralytics export's head, strides, anchors and names",
  async () => {
    const info = inspectYolo(OnnxModel.parse(await Deno.readFile(REFERENCE.url("models/yolov5n.onnx"))));
    const expected = await readmeAnchors();
    assert.equal(info.inputName, "images");
    assert.equal(info.outputName, "output0");
    assert.equal(info.inputHeight, 640);
    assert.equal(info.inputWidth, 640);
    assert.equal(info.nc, 80);
    assert.equal(info.na, 3);
    assert.equal(info.names.length, 80);
    assert.equal(info.names[0], "person");
    assert.equal(info.names[79], "toothbrush");
    assert.equal(info.stride, 32);
    assert.deepEqual(info.strides, expected.strides);
    assert.deepEqual(info.anchors, expected.anchors);
    assert.ok(info.anchorsFromGraph);
    assert.deepEqual(
      info.layers.map((l) => [l.weight, l.bias]),
      [0, 1, 2].map((k) => [`model.24.m.${k}.weight`, `model.24.m.${k}.bias`]),
    );
    assert.deepEqual(info.layers.map((l) => l.convNode), [
      "/model.24/m.0/Conv",
      "/model.24/m.1/Conv",
      "/model.24/m.2/Conv",
    ]);
    assert.equal(info.layers[0].logits, "/model.24/Transpose_output_0");
  },
);

Deno.test("inspectYolo() reads anchors from Constant nodes, initializers and Expand-ed constants", () => {
  const anchors = [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18]];
  for (const constants of ["constant", "initializer", "expand"] as const) {
    const info = inspectYolo(OnnxModel.parse(tinyYolo({ constants, anchors })));
    assert.deepEqual(info.anchors, anchors, constants);
    assert.deepEqual(info.strides, [8, 16, 32], constants);
    assert.equal(info.nc, 2);
    assert.deepEqual(info.names, ["class0", "class1"]);
  }
});

Deno.test("inspectYolo() reports dynamic axes as null and uses class<i> names without metadata", () => {
  const info = inspectYolo(
    OnnxModel.parse(tinyYolo({ dynamic: true, names: null, nc: 3, constants: "expand" })),
  );
  assert.equal(info.inputHeight, null);
  assert.equal(info.inputWidth, null);
  assert.deepEqual(info.names, ["class0", "class1", "class2"]);
});

Deno.test("inspectYolo() uses the strides found on the xy branch, not defaults", () => {
  const info = inspectYolo(OnnxModel.parse(tinyYolo({ strides: [4, 8, 16] })));
  assert.deepEqual(info.strides, [4, 8, 16]);
  assert.equal(info.stride, 16);
});

Deno.test("inspectYolo() rejects models that are not YOLO detectors", () => {
  assert.throws(
    () => inspectYolo(OnnxModel.parse(addModel("raw"))),
    /input 'x' has shape \[1,4\], expected \(1, 3, H, W\)/,
  );
  const notDetect = encodeModel({
    nodes: [node("Reshape", ["images", "shape"], ["output0"])],
    inputs: [valueInfo("images", [1, 3, 4, 7])],
    outputs: [valueInfo("output0", [1, 12, 7])],
    initializers: [{ name: "shape", dims: [3], dataType: 7, int64Data: [1, 12, 7] }],
  });
  assert.throws(() => inspectYolo(OnnxModel.parse(notDetect)), /no Detect head/);
  const wrongOutput = encodeModel({
    nodes: [node("Identity", ["images"], ["output0"])],
    inputs: [valueInfo("images", [1, 3, 8, 8])],
    outputs: [valueInfo("output0", [1, 3, 8, 8])],
  });
  assert.throws(
    () => inspectYolo(OnnxModel.parse(wrongOutput)),
    /output 'output0' has shape \[1,3,8,8\], expected \(1, N, 5\+nc\)/,
  );
  assert.throws(
    () => inspectYolo(OnnxModel.parse(tinyYolo({ names: "{0: 'only-one'}" }))),
    /'names' lists 1 classes but the output has nc = 2/,
  );
  assert.throws(() => inspectYolo(OnnxModel.parse(tinyYolo({ names: "{0: 'a', 1: b}" }))), /Class names/);
});

Deno.test("inspectYolo() falls back to ultralytics' default anchors when the wh constants are unreadable", () => {
  const model = OnnxModel.parse(
    tinyYolo({ anchors: [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12], [13, 14, 15, 16, 17, 18]] }),
  );
  for (const node of model.graph.node) {
    const t = node.output[0].startsWith("anchor_grid_") ? node.attribute[0].t : null;
    if (t) t.dims = [t.dims.reduce((a, b) => Number(a) * Number(b), 1)]; // rank 1: not an anchor_grid any more
  }
  const info = inspectYolo(model);
  assert.equal(info.anchorsFromGraph, false);
  assert.deepEqual(info.anchors, [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [
    116,
    90,
    156,
    198,
    373,
    326,
  ]]);
  assert.deepEqual(info.strides, [8, 16, 32]);
});

Deno.test("inspectYolo() refuses class counts and input sides over its bounds before sizing anything", () => {
  // Declared shapes only: the head weights keep their small data, so the file stays a few KB however large the
  // dims it claims. Without names metadata inspectYolo would synthesize one name per class.
  const withShapes = (nc: number, side: number) => {
    const model = OnnxModel.parse(tinyYolo({ names: null }));
    const no = nc + 5;
    model.graph.output[0].type!.tensorType!.shape!.dim[2].dimValue = no;
    for (const init of model.graph.initializer) {
      if (/^model\.24\.m\.\d\.weight$/.test(init.name)) init.dims[0] = 3 * no;
    }
    const dims = model.graph.input[0].type!.tensorType!.shape!.dim;
    dims[2].dimValue = side;
    dims[3].dimValue = side;
    return OnnxModel.parse(model.toBytes());
  };
  assert.equal(inspectYolo(withShapes(MAX_CLASSES, MAX_INPUT_SIDE)).names.length, MAX_CLASSES);
  assert.throws(() => inspectYolo(withShapes(MAX_CLASSES + 1, 32)), /nc = 4097 classes; at most 4096/);
  assert.throws(() => inspectYolo(withShapes(300_000_000, 32)), /at most 4096 are supported/);
  assert.throws(
    () => inspectYolo(withShapes(2, MAX_INPUT_SIDE + 32)),
    /4128x4128; at most 4096 pixels a side/,
  );
});
