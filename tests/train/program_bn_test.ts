import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { buildTrainGraph } from "../../src/onnx/graph.ts";
import { inferShapes } from "../../src/onnx/graph_shapes.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { describeGroups } from "../../src/optim/groups.ts";
import { OptimizerStepper } from "../../src/optim/stepper.ts";
import { referenceStep } from "../../src/reference/program.ts";
import { lossSettings } from "../../src/train/loss_settings.ts";
import { TrainProgram } from "../../src/train/program.ts";
import { ortRawHeads, tinyBnModel } from "./_bn_model.ts";
import { randomBatch } from "./_cases.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { relL2 } from "./_golden.ts";

// The tiny C3 + Detect export with Conv + BatchNormalization + SiLU (randomised BN state) at 64x64, nc 3.
const IMGSZ = 64;
const NC = 3;
const HYP = SCRATCH_LOW;
/** float32 GPU vs float64 reference through ~10 layers, 7 of them normalising by batch statistics of as few as
 * 8 values (P5 at 2x2, batch 2): observed <= 4e-6 relative L2 (lavapipe); 1e-5 leaves room for other adapters. */
const REFERENCE_RTOL = 1e-5;
/** GPU (float32) vs onnxruntime-node (float32, which may fold BN into the conv) in eval mode: summation order
 * only, observed <= 3e-8 relative L2 (lavapipe). */
const ORT_RTOL = 1e-6;
/** The EMA's float32 multiply-adds vs the same arithmetic in float64 on the host: observed 5e-8. */
const EMA_RTOL = 1e-6;

const batch = (count: number, seed: number) => randomBatch(count, seed, IMGSZ, NC);

function lossLayers(p: TrainProgram) {
  return p.graph.yolo.layers.map((l, i) => ({
    ny: p.heads[i].shape[2],
    nx: p.heads[i].shape[3],
    anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
  }));
}

const bnCount = (m: OnnxModel) => m.graph.node.filter((n) => n.opType === "BatchNormalization").length;

gpuTest(
  "unfused program (train-mode BatchNorm): heads, loss items, every gradient and the running stats match the float64 reference",
  async (device) => {
    const model = tinyBnModel(NC, IMGSZ);
    device.pushErrorScope("validation");
    const p = TrainProgram.create(device, model, { batch: 2, imgsz: IMGSZ, hyp: HYP });
    const { images, targets } = batch(2, 4);
    const items = await p.step(images, targets);
    assert.equal((await device.popErrorScope())?.message, undefined);
    // ONNX momentum 0.97 (share of the old statistic) is PyTorch's 0.03; eps from the node.
    const bns = p.graph.nodes.filter((n) => n.op === "batchnorm");
    assert.equal(bns.length, bnCount(model));
    for (const n of bns) {
      assert.ok(Math.abs(n.momentum - 0.03) < 1e-7 && Math.abs(n.eps - 1e-3) < 1e-10, n.name);
    }
    const ref = referenceStep(
      model,
      p.graph,
      inferShapes(model, p.graph, 2, IMGSZ, IMGSZ),
      images,
      targets,
      lossLayers(p),
      lossSettings(HYP, 3, NC, IMGSZ),
    );
    for (let i = 0; i < 3; i++) {
      const err = relL2(await readF32(device, p.heads[i].buffer, ref.heads[i].length), ref.heads[i]);
      assert.ok(err < REFERENCE_RTOL, `head ${i}: relative L2 ${err}`);
    }
    [items.box, items.obj, items.cls].forEach((v, i) => {
      assert.ok(
        Math.abs(v - ref.items[i]) <= REFERENCE_RTOL * ref.items[i],
        `item ${i}: ${v} vs ${ref.items[i]}`,
      );
    });
    const g = await readF32(device, p.grads!, p.layout.size);
    assert.equal(p.layout.entries.filter((e) => e.role === "norm_weight").length, bns.length);
    for (const e of p.layout.entries) {
      const err = relL2(g.subarray(e.offset, e.offset + e.size), ref.grads.get(e.name)!);
      assert.ok(err < REFERENCE_RTOL, `${e.name}: relative L2 ${err}`);
    }
    const running = await readF32(device, p.buffers!, p.bufferLayout.size);
    assert.equal(p.bufferLayout.entries.length, 2 * bns.length);
    for (const e of p.bufferLayout.entries) {
      const got = running.subarray(e.offset, e.offset + e.size);
      const err = relL2(got, ref.buffers.get(e.name)!);
      assert.ok(err < REFERENCE_RTOL, `${e.name}: relative L2 ${err}`);
      assert.ok(relL2(got, model.getInitializer(e.name).data) > 1e-3, `${e.name} was not updated`);
    }
  },
);

/** Same kernels and data, different batch planning: float32 summation order only. */
const SAME_RTOL = 1e-5;

gpuTest(
  "a short batch of an unfused model trains like a program planned for it: padding stays out of the BN statistics",
  async (device) => {
    const model = tinyBnModel(NC, IMGSZ);
    const programs = new ProgramCache(device);
    const two = TrainProgram.create(device, model, { batch: 2, imgsz: IMGSZ, hyp: HYP, programs });
    const one = TrainProgram.create(device, model, { batch: 1, imgsz: IMGSZ, hyp: HYP, programs });
    const { images, targets } = batch(1, 7);
    const a = await two.step(images, targets, 1);
    const b = await one.step(images, targets);
    assert.ok(Math.abs(a.loss - b.loss) <= SAME_RTOL * b.loss, `${a.loss} vs ${b.loss}`);
    const ga = await readF32(device, two.grads!, two.layout.size);
    assert.ok(relL2(ga, await readF32(device, one.grads!, one.layout.size)) < SAME_RTOL);
    const ra = await readF32(device, two.buffers!, two.bufferLayout.size);
    assert.ok(relL2(ra, await readF32(device, one.buffers!, one.bufferLayout.size)) < SAME_RTOL);
    // A full batch after it covers both images again (train-mode loss does not read the running stats).
    const full = batch(2, 8);
    const fresh = TrainProgram.create(device, model, { batch: 2, imgsz: IMGSZ, hyp: HYP, programs });
    const c = await fresh.step(full.images, full.targets);
    const d = await two.step(full.images, full.targets);
    assert.ok(Math.abs(c.loss - d.loss) <= SAME_RTOL * c.loss, `${c.loss} vs ${d.loss}`);
  },
);

gpuTest(
  "freeze 3 on an unfused model: frozen BN layers still use and update batch statistics, no gradients",
  async (device) => {
    const model = tinyBnModel(NC, IMGSZ);
    const programs = new ProgramCache(device);
    const all = TrainProgram.create(device, model, { batch: 2, imgsz: IMGSZ, hyp: HYP, programs });
    const frozen = TrainProgram.create(device, model, {
      batch: 2,
      imgsz: IMGSZ,
      hyp: HYP,
      programs,
      freeze: 3,
    });
    assert.ok(frozen.backwardDispatches.length < all.backwardDispatches.length);
    const { images, targets } = batch(2, 9);
    const a = await all.step(images, targets), f = await frozen.step(images, targets);
    assert.ok(Math.abs(a.loss - f.loss) <= SAME_RTOL * a.loss, `${a.loss} vs ${f.loss}`);
    const ga = await readF32(device, all.grads!, all.layout.size);
    const gf = await readF32(device, frozen.grads!, frozen.layout.size);
    const part = (g: Float32Array, e: { offset: number; size: number }) =>
      g.subarray(e.offset, e.offset + e.size);
    assert.ok(frozen.layout.entries.some((e) => e.frozen && e.role === "norm_weight"));
    for (const e of frozen.layout.entries) {
      if (e.frozen) assert.ok(part(gf, e).every((v) => v === 0), `${e.name} is frozen but has a gradient`);
      else {assert.ok(
          relL2(part(gf, e), part(ga, e)) < SAME_RTOL,
          `${e.name} differs when layers 0-2 are frozen`,
        );}
    }
    const ra = await readF32(device, all.buffers!, all.bufferLayout.size);
    const rf = await readF32(device, frozen.buffers!, frozen.bufferLayout.size);
    assert.ok(relL2(rf, ra) < SAME_RTOL, "running stats of frozen layers update as in train mode");
  },
);

/** float64 central differences; the step is divided by what the float32 initializer actually stored. */
const REF_FD_STEP = 1e-3;
const REF_FD_RTOL = 1e-4;

Deno.test("the float64 reference's BatchNorm path (through the batch statistics) matches finite differences", () => {
  const { images, targets } = batch(2, 10);
  const local = tinyBnModel(NC, IMGSZ);
  const graph = buildTrainGraph(local);
  const shapes = inferShapes(local, graph, 2, IMGSZ, IMGSZ);
  const layers = graph.yolo.layers.map((l, i) => ({
    ny: shapes.get(graph.heads[i])![2],
    nx: shapes.get(graph.heads[i])![3],
    anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
  }));
  const settings = lossSettings(HYP, 3, NC, IMGSZ);
  const base = referenceStep(local, graph, shapes, images, targets, layers, settings);
  // BN scales and shifts early and late, and conv weights whose outputs are normalised by batch statistics.
  const names = [
    "model.0.bn.weight",
    "model.0.conv.weight",
    "model.2.m.0.cv2.bn.bias",
    "model.2.cv1.conv.weight",
    "model.5.bn.weight",
    "model.5.conv.weight",
  ];
  for (const name of names) {
    const g = base.grads.get(name)!;
    let k = 0;
    for (let j = 0; j < g.length; j++) if (Math.abs(g[j]) > Math.abs(g[k])) k = j;
    const original = local.getInitializer(name).data;
    const stored: number[] = [];
    const at = (delta: number) => {
      const data = original.slice();
      data[k] += delta;
      local.setInitializer(name, data);
      stored.push(data[k]);
      // CIoU's alpha and the objectness targets are detached (constants to autograd), so they are held fixed.
      return referenceStep(local, graph, shapes, images, targets, layers, settings, undefined, base.detached)
        .loss;
    };
    const numeric = (at(REF_FD_STEP) - at(-REF_FD_STEP)) / (stored[0] - stored[1]);
    local.setInitializer(name, original);
    assert.ok(
      Math.abs(numeric - g[k]) <= REF_FD_RTOL * Math.abs(g[k]),
      `${name}[${k}]: ${g[k]} vs ${numeric}`,
    );
  }
});

gpuTest(
  "after training steps, written-back weights and running stats (live and EMA) evaluate on the GPU as onnxruntime-node does",
  async (device) => {
    const model = tinyBnModel(NC, IMGSZ);
    const programs = new ProgramCache(device);
    const p = TrainProgram.create(device, model, { batch: 2, imgsz: IMGSZ, hyp: HYP, programs });
    const loop = new OptimizerStepper(device, programs, p.layout.entries, {
      params: p.params,
      grads: p.grads!,
      emaExtra: p.emaExtra,
    }, {
      optimizer: "SGD",
      hyp: SCRATCH_LOW,
      batchSize: 2,
      nbs: 2,
      nb: 3,
      epochs: 1,
      cosLr: false,
    });
    let emaWant = Float64Array.from(await readF32(device, p.buffers!, p.bufferLayout.size));
    for (let i = 0; i < 3; i++) {
      const { images, targets } = batch(2, 20 + i);
      const encoder = device.createCommandEncoder();
      const plan = loop.begin(encoder, 0, i);
      p.setBatch(images, targets);
      p.encodeStep(encoder);
      loop.finish(encoder, plan);
      device.queue.submit([encoder.finish()]);
      await p.readItems();
      assert.ok(plan.stepped);
      const live = await readF32(device, p.buffers!, p.bufferLayout.size);
      const d = loop.ema.decayAt(i + 1);
      emaWant = emaWant.map((v, j) => d * v + (1 - d) * live[j]);
    }
    const emaBuffers = await readF32(device, loop.ema.buffers[1], p.bufferLayout.size);
    assert.ok(relL2(emaBuffers, emaWant) < EMA_RTOL, "the EMA averages the running stats");

    const last = OnnxModel.parse(model.toBytes()), ema = OnnxModel.parse(model.toBytes());
    await p.writeBack(last);
    await p.writeBack(ema, loop.ema.buffers[0], loop.ema.buffers[1]);
    const live = await readF32(device, p.buffers!, p.bufferLayout.size);
    for (const e of p.bufferLayout.entries) {
      assert.deepEqual(last.getInitializer(e.name).data, live.slice(e.offset, e.offset + e.size));
      assert.deepEqual(ema.getInitializer(e.name).data, emaBuffers.slice(e.offset, e.offset + e.size));
    }
    const moved = p.layout.entries.filter((e) =>
      relL2(last.getInitializer(e.name).data, model.getInitializer(e.name).data) > 0
    );
    assert.ok(moved.some((e) => e.role === "norm_weight") && moved.some((e) => e.role === "bias"));

    const image = batch(1, 30).images;
    for (const [what, m] of [["last", last], ["ema", ema]] as const) {
      const evalProgram = TrainProgram.create(device, m, {
        batch: 1,
        imgsz: IMGSZ,
        training: false,
        programs,
      });
      const gpu = await evalProgram.forward(image);
      const want = await ortRawHeads(m, evalProgram.graph.heads, image, IMGSZ);
      gpu.forEach((h, i) => {
        const err = relL2(h, want[i]);
        assert.ok(err < ORT_RTOL, `${what} head ${i}: relative L2 ${err} vs onnxruntime`);
      });
    }
    // The same EMA state uploaded into an evaluation program of the original model.
    const evalOriginal = TrainProgram.create(device, model, {
      batch: 1,
      imgsz: IMGSZ,
      training: false,
      programs,
    });
    const load = device.createCommandEncoder();
    load.copyBufferToBuffer(loop.ema.buffers[0], 0, evalOriginal.params, 0, p.layout.size * 4);
    load.copyBufferToBuffer(loop.ema.buffers[1], 0, evalOriginal.buffers!, 0, p.bufferLayout.size * 4);
    device.queue.submit([load.finish()]);
    const fromEma = TrainProgram.create(device, ema, { batch: 1, imgsz: IMGSZ, training: false, programs });
    const [a, b] = [await evalOriginal.forward(image), await fromEma.forward(image)];
    a.forEach((h, i) => assert.deepEqual(h, b[i]));
  },
);

gpuTest(
  "BatchNorm scales form optimizer group 2 (no decay), their shifts join the biases",
  (device) => {
    const model = tinyBnModel(NC, IMGSZ);
    const p = TrainProgram.create(device, model, { batch: 1, imgsz: IMGSZ, training: false });
    const bnNodes = model.graph.node.filter((n) => n.opType === "BatchNormalization");
    const convs = model.graph.node.filter((n) => n.opType === "Conv");
    for (const n of bnNodes) {
      assert.deepEqual([p.layout.byName.get(n.input[1])!.group, p.layout.byName.get(n.input[1])!.role], [
        2,
        "norm_weight",
      ]);
      assert.deepEqual([p.layout.byName.get(n.input[2])!.group, p.layout.byName.get(n.input[2])!.role], [
        0,
        "bias",
      ]);
      for (const stat of n.input.slice(3)) {
        assert.ok(!p.layout.byName.has(stat) && p.bufferLayout.byName.has(stat), `${stat} is a buffer`);
      }
    }
    // smart_optimizer's line for PyTorch's yolov5 with BN: "<BN> weight(decay=0.0), <conv> weight(decay=...), <bias> bias".
    const convBiases = convs.filter((c) => c.input[2]).length;
    assert.equal(convBiases, 3, "only the Detect convs keep a bias");
    assert.equal(
      describeGroups("SGD", 0.01, 0.0005, p.layout.entries),
      `optimizer: SGD(lr=0.01) with parameter groups ${bnNodes.length} weight(decay=0.0), ` +
        `${convs.length} weight(decay=0.0005), ${bnNodes.length + convBiases} bias`,
    );
  },
);
