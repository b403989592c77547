import assert from "node:assert/strict";
import * as ort from "../../src/serving/backends/ort_native.ts";
import { int64, OnnxModel, tensorToFloat32, valueShape } from "../../src/onnx/model.ts";
import type * as onnxProtoModule from "onnx-proto";
import { addModel, encodeModel, floatTensor, node, onnx, valueInfo } from "./_models.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";
import { mulberry32 } from "../_helpers/random.ts";

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx");
const YOLO_PATH = REFERENCE.url("models/yolov5n.onnx");
const IMGSZ = 640; // the export's fixed input size

// onnxruntime's float32 sigmoid is accurate to ~1e-7 absolute; re-deriving logit(p) from such a p and shifting
// it by DELTA = 1 amplifies that by at most e (~2.7) within [MIN_P, MAX_P], far below this tolerance.
const SIGMOID_SHIFT_TOL = 1e-5;
const MIN_P = 1e-3;
const MAX_P = 0.99;

async function runYolo(bytes: Uint8Array, input: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ images: new ort.Tensor("float32", input, [1, 3, IMGSZ, IMGSZ]) });
    return out.output0.data as Float32Array;
  } finally {
    await session.release();
  }
}

function randomImage(seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length: 3 * IMGSZ * IMGSZ }, rand);
}

referenceTest(
  REFERENCE,
  "OnnxModel.parse() reads the ultralytics export's graph, metadata and initializers",
  async () => {
    const model = OnnxModel.parse(await Deno.readFile(YOLO_PATH));
    assert.equal(model.metadata.get("stride"), "32");
    assert.match(model.metadata.get("names") ?? "", /^\{0: 'person', 1: 'bicycle'/);
    assert.equal(model.initializerNames().length, 120);
    assert.equal(model.initializerNames()[0], "model.0.conv.weight");
    assert.equal(model.graph.node.length, 264);
    assert.equal(int64(model.proto.opsetImport[0].version), 12);
    assert.deepEqual(valueShape(model.graph.input[0]), [1, 3, 640, 640]);
    assert.deepEqual(valueShape(model.graph.output[0]), [1, 25200, 85]);
    const head = model.getInitializer("model.24.m.0.weight");
    assert.deepEqual(head.dims, [255, 64, 1, 1]);
    assert.equal(head.data.length, 255 * 64);
  },
);

referenceTest(
  REFERENCE,
  "OnnxModel.toBytes() with unchanged weights gives bitwise identical onnxruntime outputs",
  async () => {
    const original = await Deno.readFile(YOLO_PATH);
    const rewritten = OnnxModel.parse(original).toBytes();
    const input = randomImage(1);
    const [a, b] = [await runYolo(original, input), await runYolo(rewritten, input)];
    assert.equal(a.length, 25200 * 85);
    assert.deepEqual(
      new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
      new Uint8Array(a.buffer, a.byteOffset, a.byteLength),
    );
    const reparsed = OnnxModel.parse(rewritten);
    assert.deepEqual([...reparsed.metadata], [...OnnxModel.parse(original).metadata]);
    assert.equal(reparsed.proto.producerName, "pytorch");
  },
);

referenceTest(
  REFERENCE,
  "OnnxModel.setInitializer() shifts the P3 objectness logit of anchor 0 by the bias change",
  async () => {
    const OBJ = 4; // channel 4 of anchor 0's 85 outputs: objectness
    // On random input objectness is ~1e-6; a base shift lifts it to where probabilities carry the logit well.
    const BASE = 8;
    const DELTA = 1;
    const withObjectnessShift = async (shift: number) => {
      const model = OnnxModel.parse(await Deno.readFile(YOLO_PATH));
      const bias = model.getInitializer("model.24.m.0.bias");
      bias.data[OBJ] += shift;
      model.setInitializer("model.24.m.0.bias", bias.data);
      const bytes = model.toBytes();
      assert.equal(OnnxModel.parse(bytes).getInitializer("model.24.m.0.bias").data[OBJ], bias.data[OBJ]);
      return bytes;
    };
    const input = randomImage(2);
    const before = await runYolo(await withObjectnessShift(BASE), input);
    const after = await runYolo(await withObjectnessShift(BASE + DELTA), input);
    const p3Anchor0Rows = 80 * 80; // rows are ordered (layer, anchor, y, x)
    let checked = 0;
    for (let row = 0; row < 25200; row++) {
      for (let c = 0; c < 85; c++) {
        const i = row * 85 + c;
        if (row < p3Anchor0Rows && c === OBJ) {
          const p = before[i];
          if (p < MIN_P || p > MAX_P) continue;
          const expected = 1 / (1 + Math.exp(-(Math.log(p / (1 - p)) + DELTA)));
          assert.ok(
            Math.abs(after[i] - expected) < SIGMOID_SHIFT_TOL,
            `row ${row}: ${after[i]} vs ${expected}`,
          );
          checked++;
        } else {
          assert.equal(after[i], before[i], `row ${row} channel ${c} should not change`);
        }
      }
    }
    assert.ok(checked > p3Anchor0Rows / 2, `only ${checked} objectness values were in the checked range`);
  },
);

Deno.test("OnnxModel keeps the float_data form and round-trips it through onnxruntime", async () => {
  for (const form of ["raw", "float"] as const) {
    const model = OnnxModel.parse(addModel(form));
    assert.deepEqual(Array.from(model.getInitializer("b").data), [1, 2, 3, 4]);
    model.setInitializer("b", new Float32Array([10, 20, 30, 40]));
    const tensor = model.initializer("b")!;
    assert.equal(tensor.floatData.length > 0, form === "float", `${form} form kept`);
    const session = await ort.InferenceSession.create(model.toBytes());
    const out = await session.run({ x: new ort.Tensor("float32", new Float32Array([1, 1, 1, 1]), [1, 4]) });
    await session.release();
    assert.deepEqual(Array.from(out.y.data as Float32Array), [11, 21, 31, 41]);
    assert.equal(model.metadata.get("note"), "hand-made");
  }
});

Deno.test("OnnxModel.setInitializer() rejects a wrong length and unknown names", () => {
  const model = OnnxModel.parse(addModel("raw"));
  assert.throws(() => model.setInitializer("b", new Float32Array(3)), /got 3 values, dims \[1,4\] need 4/);
  assert.throws(() => model.getInitializer("nope"), /no initializer 'nope'/);
});

Deno.test("OnnxModel.setMetadata() updates and adds metadata_props", () => {
  const model = OnnxModel.parse(addModel("raw"));
  model.setMetadata("note", "changed");
  model.setMetadata("names", "{0: 'a'}");
  const back = OnnxModel.parse(model.toBytes());
  assert.equal(back.metadata.get("note"), "changed");
  assert.equal(back.metadata.get("names"), "{0: 'a'}");
});

Deno.test("OnnxModel.parse() rejects garbage, empty graphs and external data with clear errors", () => {
  assert.throws(
    () => OnnxModel.parse(new TextEncoder().encode("this is not an onnx file at all")),
    /Cannot parse ONNX/,
  );
  assert.throws(() => OnnxModel.parse(new Uint8Array(0)), /no graph nodes/);
  const external = encodeModel({
    nodes: [node("Add", ["x", "b"], ["y"])],
    inputs: [valueInfo("x", [1, 4])],
    outputs: [valueInfo("y", [1, 4])],
    initializers: [{
      name: "b",
      dims: [1, 4],
      dataType: onnx.TensorProto.DataType.FLOAT,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: [{ key: "location", value: "weights.bin" }],
    }],
  });
  assert.throws(() => OnnxModel.parse(external), /initializer 'b' \(graph\) stores its data externally/);
});

Deno.test("tensorToFloat32() rejects non-float tensors", () => {
  const t = OnnxModel.parse(encodeModel({
    nodes: [node("Add", ["x", "b"], ["y"])],
    inputs: [valueInfo("x", [1])],
    outputs: [valueInfo("y", [1])],
    initializers: [{ name: "b", dims: [1], dataType: onnx.TensorProto.DataType.INT64, int64Data: [3] }],
  })).initializer("b")!;
  assert.throws(() => tensorToFloat32(t), /data type 7, expected FLOAT \(1\)/);
});

Deno.test("OnnxModel.parse() refuses external data in node attributes, sparse initializers, subgraphs and functions", () => {
  const EXTERNAL = onnx.TensorProto.DataLocation.EXTERNAL;
  const { GRAPH, TENSOR, TENSORS, SPARSE_TENSOR } = onnx.AttributeProto.AttributeType;
  const externalTensor = (name: string) => ({
    name,
    dims: [1],
    dataType: onnx.TensorProto.DataType.FLOAT,
    dataLocation: EXTERNAL,
    externalData: [{ key: "location", value: "deno.json" }],
  });
  // Only `externalData` set (data_location left DEFAULT) counts as external too.
  const keyOnly = { ...externalTensor("k"), dataLocation: undefined };
  const innocent = floatTensor("fine", [1], [1]);
  const base = (extra: Parameters<typeof encodeModel>[0]["nodes"]) => ({
    nodes: [node("Add", ["x", "x"], ["y"]), ...extra],
    inputs: [valueInfo("x", [1, 4])],
    outputs: [valueInfo("y", [1, 4])],
  });
  const constantOf = (attribute: onnxProtoModule.onnx.IAttributeProto) => ({
    opType: "Constant",
    output: ["c"],
    name: "const",
    attribute: [attribute],
  });
  const subgraph = (
    initializer: onnxProtoModule.onnx.ITensorProto[],
    nodes: onnxProtoModule.onnx.INodeProto[],
  ) => ({
    name: "branch",
    node: nodes,
    initializer,
    output: [valueInfo("z", [1])],
  });
  const cases: [string, Uint8Array, RegExp][] = [
    [
      "Constant t",
      encodeModel(base([constantOf({ name: "value", type: TENSOR, t: externalTensor("v") })])),
      /tensor in attribute 'value' of node 'const'/,
    ],
    [
      "Constant t, key only",
      encodeModel(base([constantOf({ name: "value", type: TENSOR, t: keyOnly })])),
      /node 'const'/,
    ],
    [
      "tensors",
      encodeModel(
        base([constantOf({ name: "ts", type: TENSORS, tensors: [innocent, externalTensor("v")] })]),
      ),
      /tensor in attribute 'ts'/,
    ],
    [
      "sparse_tensor",
      encodeModel(base([constantOf({
        name: "sparse_value",
        type: SPARSE_TENSOR,
        sparseTensor: {
          values: externalTensor("sv"),
          indices: { name: "i", dims: [1], dataType: 7, int64Data: [0] },
          dims: [4],
        },
      })])),
      /sparse tensor in attribute 'sparse_value'/,
    ],
    [
      "If then_branch initializer, nested in a Loop body",
      encodeModel(base([{
        opType: "Loop",
        name: "loop",
        output: ["l"],
        attribute: [{
          name: "body",
          type: GRAPH,
          g: subgraph([], [{
            opType: "If",
            name: "if",
            output: ["z"],
            attribute: [{ name: "then_branch", type: GRAPH, g: subgraph([externalTensor("w")], []) }],
          }]),
        }],
      }])),
      /initializer 'w' \(subgraph of attribute 'then_branch' of node 'if' \(subgraph of attribute 'body'/,
    ],
    [
      "graphs attribute",
      encodeModel(base([{
        opType: "Custom",
        name: "custom",
        output: ["q"],
        attribute: [{
          name: "branches",
          type: onnx.AttributeProto.AttributeType.GRAPHS,
          graphs: [subgraph([innocent], []), subgraph([externalTensor("w2")], [])],
        }],
      }])),
      /initializer 'w2'/,
    ],
  ];
  const sparseInit = onnx.ModelProto.decode(encodeModel(base([])));
  sparseInit.graph!.sparseInitializer = [
    onnx.SparseTensorProto.create({ values: externalTensor("si"), dims: [4] }),
  ];
  cases.push(["sparse initializer", onnx.ModelProto.encode(sparseInit).finish(), /sparse initializer 'si'/]);
  const withFunction = onnx.ModelProto.decode(encodeModel(base([])));
  withFunction.functions = [onnx.FunctionProto.create({
    name: "helper",
    node: [constantOf({ name: "value", type: TENSOR, t: externalTensor("fv") })],
  })];
  cases.push(["function body", onnx.ModelProto.encode(withFunction).finish(), /function 'helper'/]);
  for (const [label, bytes, where] of cases) {
    assert.throws(() => OnnxModel.parse(bytes), (err: Error) => {
      assert.match(err.message, /stores its data externally/, label);
      assert.match(err.message, where, label);
      return true;
    });
  }
  assert.doesNotThrow(() =>
    OnnxModel.parse(encodeModel(base([constantOf({ name: "value", type: TENSOR, t: innocent })])))
  );
});
