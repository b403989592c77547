import assert from "node:assert/strict";
import * as ort from "../../src/serving/backends/ort_native.ts";
import { int64, type NodeProto, OnnxModel, tensorDims } from "../../src/onnx/model.ts";
import { newModel, newModelBytes, pythonNamesRepr } from "../../src/train/new_model.ts";
import { makeDivisible, roundHalfEven, scaledDepth } from "../../src/train/new_model/architecture.ts";
import { BN_EPS, SeededRandom } from "../../src/train/new_model/init.ts";
import { run } from "../../src/cli/new_model.ts";
import { parsePythonNames } from "../../src/onnx/names.ts";
import { inspectYolo } from "../../src/onnx/yolo.ts";
import { referenceData, referenceTest } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, "models/yolov5n.onnx");
const EXPORT = REFERENCE.url("models/yolov5n.onnx");
const YOLOV5N = { depth: 0.33, width: 0.25 };
// Read only where the reference data is there: the tests that compare with the export are skipped otherwise.
let reference!: OnnxModel;
/** The export's class names, read back from its Python dict literal (COCO names hold no quotes or commas). */
let referenceNames!: string[];
if (!REFERENCE.missing) {
  reference = OnnxModel.parse(await Deno.readFile(EXPORT));
  referenceNames = [...(reference.metadata.get("names") ?? "").matchAll(/\d+: '([^']*)'/g)].map((m) => m[1]);
}

function opCounts(model: OnnxModel): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const n of model.graph.node) counts[n.opType] = (counts[n.opType] ?? 0) + 1;
  return counts;
}

/** Everything about a node except the tensor payloads, plus those payloads as bytes, for exact comparison. */
function nodeForm(n: NodeProto): string {
  const attrs = n.attribute.map((a) => ({
    name: a.name,
    type: a.type,
    i: int64(a.i),
    f: a.f,
    s: new TextDecoder().decode(a.s),
    ints: a.ints.map(int64),
    t: a.t ? { dims: tensorDims(a.t), dataType: a.t.dataType, raw: Array.from(a.t.rawData) } : null,
  }));
  return JSON.stringify({ name: n.name, op: n.opType, input: n.input, output: n.output, attrs });
}

function randomImage(imgsz: number, seed: number): Float32Array {
  const rng = new SeededRandom(seed);
  return Float32Array.from({ length: 3 * imgsz * imgsz }, () => rng.next());
}

async function infer(bytes: Uint8Array, imgsz: number, input: Float32Array): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ images: new ort.Tensor("float32", input, [1, 3, imgsz, imgsz]) });
    return out.output0;
  } finally {
    await session.release();
  }
}

referenceTest(
  REFERENCE,
  "newModel() at yolov5n multiples has the export's initializers: names, order and shapes",
  () => {
    const model = newModel({ nc: 80, ...YOLOV5N, imgsz: 640 });
    const shapes = (m: OnnxModel) => m.graph.initializer.map((t) => `${t.name} [${tensorDims(t)}]`);
    assert.deepEqual(shapes(model), shapes(reference));
  },
);

referenceTest(
  REFERENCE,
  "newModel() at yolov5n multiples is the export's graph node for node, Detect constants included",
  () => {
    const model = newModel({ nc: 80, names: referenceNames, ...YOLOV5N, imgsz: 640 });
    // docs/training.md §9.2's census of the export; Constant nodes hold Detect's grid, anchor_grid, strides
    // and shapes.
    assert.deepEqual(opCounts(reference), {
      Conv: 60,
      Sigmoid: 60,
      Mul: 69,
      Constant: 28,
      Concat: 17,
      Add: 10,
      MaxPool: 3,
      Resize: 2,
      Reshape: 6,
      Transpose: 3,
      Split: 3,
      Pow: 3,
    });
    assert.deepEqual(opCounts(model), opCounts(reference));
    assert.deepEqual(model.graph.node.map(nodeForm), reference.graph.node.map(nodeForm));
    assert.equal(JSON.stringify(model.graph.input), JSON.stringify(reference.graph.input));
    assert.equal(JSON.stringify(model.graph.output), JSON.stringify(reference.graph.output));
    assert.deepEqual(model.metadata, reference.metadata);
    assert.deepEqual(model.proto.opsetImport.map((o) => [o.domain, int64(o.version)]), [["", 12]]);
  },
);

referenceTest(
  REFERENCE,
  "newModel() with the yolov5n weights copied in computes the export's output (onnxruntime-node)",
  async () => {
    const model = newModel({ nc: 80, ...YOLOV5N, imgsz: 640 });
    for (const name of reference.initializerNames()) {
      model.setInitializer(name, reference.getInitializer(name).data);
    }
    const input = randomImage(640, 1);
    const expected = await infer(await Deno.readFile(EXPORT), 640, input);
    const actual = await infer(model.toBytes(), 640, input);
    assert.deepEqual(actual.dims, [1, 25200, 85]);
    // Same graph, same weights, same runtime: only kernel-order noise could differ (pixel outputs up to ~640).
    const TOLERANCE = 1e-4;
    const e = expected.data as Float32Array;
    const a = actual.data as Float32Array;
    let maxDiff = 0;
    for (let i = 0; i < e.length; i++) maxDiff = Math.max(maxDiff, Math.abs(e[i] - a[i]));
    assert.ok(maxDiff <= TOLERANCE, `max abs diff ${maxDiff} > ${TOLERANCE}`);
  },
);

Deno.test("newModel() at 320 with 3 classes runs in onnxruntime-node and decodes boxes in range", async () => {
  const nc = 3;
  const out = await infer(
    newModelBytes({ nc, names: ["a", "b", "c"], ...YOLOV5N, imgsz: 320 }),
    320,
    randomImage(320, 2),
  );
  assert.deepEqual(out.dims, [1, 6300, 8]);
  const y = out.data as Float32Array;
  const anchors = [[10, 13, 16, 30, 33, 23], [30, 61, 62, 45, 59, 119], [116, 90, 156, 198, 373, 326]];
  let row = 0;
  [8, 16, 32].forEach((stride, level) => {
    const n = 320 / stride;
    const objLogits: number[] = [];
    for (let a = 0; a < 3; a++) {
      for (let gy = 0; gy < n; gy++) {
        for (let gx = 0; gx < n; gx++, row++) {
          const [cx, cy, w, h, ...probs] = y.subarray(row * 8, row * 8 + 8);
          // Rows are (level, anchor, y, x); xy = (2σ - 0.5 + cell)·stride, wh = (2σ)²·anchor
          // (docs/training.md §7.1).
          assert.ok(cx >= (gx - 0.5) * stride && cx <= (gx + 1.5) * stride, `row ${row} cx ${cx}`);
          assert.ok(cy >= (gy - 0.5) * stride && cy <= (gy + 1.5) * stride, `row ${row} cy ${cy}`);
          assert.ok(w >= 0 && w <= 4 * anchors[level][2 * a], `row ${row} w ${w}`);
          assert.ok(h >= 0 && h <= 4 * anchors[level][2 * a + 1], `row ${row} h ${h}`);
          for (const p of probs) assert.ok(p > 0 && p < 1, `row ${row} probability ${p}`);
          objLogits.push(Math.log(probs[0] / (1 - probs[0])));
        }
      }
    }
    // docs/training.md §6.8 puts objectness logits at log(8 / (640/s)^2) (-6.68, -5.30, -3.91); the head's
    // default init and its inputs move them by about 0.1 (measured), and a head without the prior would sit
    // near 0.
    const MEDIAN_SHIFT_TOLERANCE = 0.5;
    const median = objLogits.sort((p, q) => p - q)[objLogits.length >> 1];
    const prior = Math.log(8 / (640 / stride) ** 2);
    assert.ok(Math.abs(median - prior) < MEDIAN_SHIFT_TOLERANCE, `level ${level} median obj logit ${median}`);
  });
  assert.equal(row, 6300);
});

Deno.test("newModel() init: fused convs U(±1/√fan_in)/√(1+eps) with zero bias; Detect biases carry the docs/training.md §6.8 priors", () => {
  const nc = 3;
  const model = newModel({ nc, ...YOLOV5N, imgsz: 320, seed: 7 });
  for (const name of model.initializerNames()) {
    const { dims, data } = model.getInitializer(name);
    const isHead = /^model\.24\.m\.\d\.(weight|bias)$/.test(name);
    if (name.endsWith(".weight")) {
      const fanIn = dims[1] * dims[2] * dims[3];
      const bound = (1 / Math.sqrt(fanIn)) * (isHead ? 1 : 1 / Math.sqrt(1 + BN_EPS));
      const max = data.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
      // A uniform sample of >= 48 values reaches past 80% of its bound (P(all below) <= 0.8^48 ≈ 2e-5).
      assert.ok(data.length >= 48, `${name}: ${data.length} values`);
      assert.ok(max <= bound * (1 + 1e-6) && max > 0.8 * bound, `${name}: max |w| ${max}, bound ${bound}`);
    } else if (!isHead) {
      assert.ok(data.every((v) => v === 0), `${name}: fused BN bias must be 0`);
    } else {
      const level = Number(name[11]);
      const stride = [8, 16, 32][level];
      const bound = 1 / Math.sqrt(model.getInitializer(name.replace("bias", "weight")).dims[1]);
      const no = nc + 5;
      data.forEach((v, i) => {
        const k = i % no;
        const prior = k === 4
          ? Math.log(8 / (640 / stride) ** 2)
          : k >= 5
          ? Math.log(0.6 / (nc - 0.99999))
          : 0;
        assert.ok(Math.abs(v - prior) <= bound * (1 + 1e-6), `${name}[${i}] = ${v}, prior ${prior}`);
      });
    }
  }
});

Deno.test("newModelBytes() is deterministic per seed and differs across seeds", () => {
  const opts = { nc: 2, ...YOLOV5N, imgsz: 128 };
  assert.deepEqual(newModelBytes({ ...opts, seed: 3 }), newModelBytes({ ...opts, seed: 3 }));
  assert.notDeepEqual(newModelBytes({ ...opts, seed: 3 }), newModelBytes({ ...opts, seed: 4 }));
});

Deno.test("parse_model scaling: Python round-half-even depth, make_divisible width", () => {
  // Python 3: round(0.5) == 0, round(1.5) == 2, round(2.5) == 2, round(4.5) == 4.
  assert.deepEqual([0.5, 1.5, 2.5, 4.5, 2.01].map(roundHalfEven), [0, 2, 2, 4, 2]);
  assert.deepEqual([3, 6, 9, 1].map((n) => scaledDepth(n, 0.33)), [1, 2, 3, 1]);
  assert.deepEqual([3, 6, 9].map((n) => scaledDepth(n, 0.5)), [2, 3, 4]);
  assert.deepEqual([64 * 0.25, 1024 * 0.75, 20.5].map((c) => makeDivisible(c)), [16, 768, 24]);
});

Deno.test("pythonNamesRepr() writes str(dict) the way Python prints it", () => {
  const names = ["person", "it's", 'say "hi"', "a\\b"];
  assert.equal(pythonNamesRepr(names), `{0: 'person', 1: "it's", 2: 'say "hi"', 3: 'a\\\\b'}`);
  assert.deepEqual(parsePythonNames(pythonNamesRepr(names)), names);
});

referenceTest(
  REFERENCE,
  "inspectYolo() reads a fresh 320 model's head: nc, names, strides, pixel anchors",
  () => {
    const info = inspectYolo(newModel({ nc: 3, names: ["a", "b", "c"], ...YOLOV5N, imgsz: 320 }));
    const expected = inspectYolo(reference);
    assert.equal(info.nc, 3);
    assert.deepEqual(info.names, ["a", "b", "c"]);
    assert.equal(info.inputHeight, 320);
    assert.ok(info.anchorsFromGraph);
    assert.deepEqual(info.strides, expected.strides);
    assert.deepEqual(info.anchors, expected.anchors);
    assert.deepEqual(info.layers.map((l) => l.weight), expected.layers.map((l) => l.weight));
  },
);

Deno.test("new-model CLI writes a loadable model and rejects bad flags", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/m.onnx`;
    const args = ["--nc", "2", "--names", "cat,dog", "--imgsz", "128", "--seed", "5", "--out", out];
    assert.equal(await run(args), 0);
    const model = OnnxModel.parse(await Deno.readFile(out));
    assert.equal(model.metadata.get("names"), "{0: 'cat', 1: 'dog'}");
    assert.equal(model.metadata.get("stride"), "32");
    assert.equal(await run(["--nc", "2", "--names", "cat", "--out", out]), 2);
    assert.equal(await run(["--nc", "2", "--imgsz", "100", "--out", out]), 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
