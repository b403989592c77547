import assert from "node:assert/strict";
import * as ort from "../../src/serving/backends/ort_native.ts";
import { run } from "../../src/cli/new_model.ts";
import { buildTrainGraph } from "../../src/onnx/graph.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { inspectYolo } from "../../src/onnx/yolo.ts";
import { newModel, newModelBytes } from "../../src/train/new_model.ts";
import { BN_EPS, BN_MOMENTUM, SeededRandom } from "../../src/train/new_model/init.ts";
import { relL2 } from "./_golden.ts";

const IMGSZ = 128;
const SMALL = { nc: 3, names: ["a", "b", "c"], depth: 0.33, width: 0.125, imgsz: IMGSZ, seed: 7 };
/** Fused and unfused graphs of one fresh model in float32. onnxruntime folds a BatchNormalization after a Conv
 * into the conv's weight at load, exactly as the fused init does, so here they agree exactly (observed 0);
 * unfolded, the BN's scale applied to the conv output would differ by a few ulps per layer over ~60 layers. */
const FUSED_VS_UNFUSED_RTOL = 1e-5;

const bnNodes = (m: OnnxModel) => m.graph.node.filter((n) => n.opType === "BatchNormalization");

async function infer(bytes: Uint8Array, input: Float32Array): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = await session.run({ images: new ort.Tensor("float32", input, [1, 3, IMGSZ, IMGSZ]) });
    return out.output0.data as Float32Array;
  } finally {
    await session.release();
  }
}

Deno.test("newModel({unfused}) keeps each Conv's BatchNorm as export writes it: Conv without bias, BN, SiLU", () => {
  const model = newModel({ ...SMALL, unfused: true });
  const consumers = (t: string) => model.graph.node.filter((n) => n.input.includes(t));
  const convs = model.graph.node.filter((n) => n.opType === "Conv");
  const detect = convs.filter((c) => /^model\.24\.m\.\d\.weight$/.test(c.input[1]));
  assert.equal(detect.length, 3);
  assert.ok(detect.every((c) => c.input.length === 3), "Detect convs keep their bias");
  const bns = bnNodes(model);
  assert.equal(bns.length, convs.length - 3);
  for (const conv of convs.filter((c) => !detect.includes(c))) {
    assert.equal(conv.input.length, 2, `${conv.name} has no bias`);
    const [bn] = consumers(conv.output[0]);
    assert.equal(bn.opType, "BatchNormalization");
    assert.equal(bn.name, conv.name.replace(/\/conv\/Conv$/, "/bn/BatchNormalization"));
    const prefix = conv.input[1].replace(/\.conv\.weight$/, "");
    assert.deepEqual(
      bn.input.slice(1),
      ["weight", "bias", "running_mean", "running_var"].map((k) => `${prefix}.bn.${k}`),
    );
    const attr = (k: string) => bn.attribute.find((a) => a.name === k)!.f;
    assert.equal(attr("epsilon"), Math.fround(BN_EPS));
    // torch.onnx writes 1 - momentum: ONNX's momentum is the share of the old statistic.
    assert.equal(attr("momentum"), Math.fround(1 - BN_MOMENTUM));
    assert.deepEqual(consumers(bn.output[0]).map((n) => n.opType).sort(), ["Mul", "Sigmoid"]);
    // PyTorch's fresh BatchNorm2d, in registration order after the conv weight.
    const names = model.initializerNames();
    assert.deepEqual(names.slice(names.indexOf(conv.input[1]), names.indexOf(conv.input[1]) + 5), [
      conv.input[1],
      ...bn.input.slice(1),
    ]);
    const values = bn.input.slice(1).map((t) => [...new Set(model.getInitializer(t).data)]);
    assert.deepEqual(values, [[1], [0], [0], [1]]);
  }
  const graph = buildTrainGraph(model);
  assert.equal(graph.buffers.length, 2 * bns.length);
  assert.equal(graph.params.filter((p) => p.role === "norm_weight").length, bns.length);
});

Deno.test("unfused and fused fresh models of one seed: same conv init, same head, same onnxruntime output", async () => {
  const fused = newModel(SMALL), unfused = newModel({ ...SMALL, unfused: true });
  const scale = Math.fround(1 / Math.sqrt(1 + BN_EPS));
  for (const conv of unfused.graph.node.filter((n) => n.opType === "Conv" && n.input.length === 2)) {
    const w = unfused.getInitializer(conv.input[1]).data;
    assert.deepEqual(fused.getInitializer(conv.input[1]).data, w.map((v) => v * scale), conv.input[1]);
  }
  assert.deepEqual(inspectYolo(unfused), inspectYolo(fused));
  const rng = new SeededRandom(3);
  const image = Float32Array.from({ length: 3 * IMGSZ * IMGSZ }, () => rng.next());
  const [a, b] = [
    await infer(newModelBytes({ ...SMALL, unfused: true }), image),
    await infer(fused.toBytes(), image),
  ];
  const err = relL2(a, b);
  assert.ok(err < FUSED_VS_UNFUSED_RTOL, `relative L2 ${err}`);
});

Deno.test("new-model --unfused writes the unfused model", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const out = `${dir}/m.onnx`;
    const args = [
      "--nc",
      "3",
      "--width",
      "0.125",
      "--imgsz",
      "128",
      "--seed",
      "7",
      "--unfused",
      "--out",
      out,
    ];
    assert.equal(await run(args), 0);
    const model = OnnxModel.parse(await Deno.readFile(out));
    assert.equal(
      bnNodes(model).length,
      bnNodes(newModel({ ...SMALL, names: undefined, unfused: true })).length,
    );
    assert.ok(bnNodes(model).length > 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
