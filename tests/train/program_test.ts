import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { ProgramCache } from "../../src/gpu/programs.ts";
import { TrainProgram } from "../../src/train/program.ts";
import { buildTrainGraph } from "../../src/onnx/graph.ts";
import { inferShapes } from "../../src/onnx/graph_shapes.ts";
import { referenceStep } from "../../src/reference/program.ts";
import { lossSettings } from "../../src/train/loss_settings.ts";
import { randomBatch } from "./_cases.ts";
import { SCRATCH_LOW } from "../_helpers/hyp.ts";
import { relL2 } from "./_golden.ts";
import { tinyModel } from "./_tiny_model.ts";
import { newModel } from "../../src/train/new_model.ts";
import { tensorDims } from "../../src/onnx/model.ts";
import { assertSilusFused } from "./_fusion.ts";

// A tiny YOLOv5-form export (Conv/SiLU, C3, Detect; nc 3) at 64x64 keeps these runs to fractions of a second.
const IMGSZ = 64;
const model = tinyModel(3, IMGSZ);
const HYP = SCRATCH_LOW;
/** Same kernels and data, different dispatch grouping or accumulation order: float32 summation noise only. */
const SAME_RTOL = 1e-5;

const batch = (count: number, seed: number) => randomBatch(count, seed, IMGSZ, 3);

function programFor(
  device: GPUDevice,
  programs: ProgramCache,
  opts: { batch: number; freeze?: number; training?: boolean; recomputeColumns?: boolean },
) {
  return TrainProgram.create(device, model, { imgsz: IMGSZ, hyp: HYP, programs, ...opts });
}

const grads = (device: GPUDevice, p: TrainProgram) => readF32(device, p.grads!, p.layout.size);
const slice = (p: TrainProgram, g: Float32Array, name: string) => {
  const e = p.layout.byName.get(name)!;
  return g.subarray(e.offset, e.offset + e.size);
};

/** float32 GPU vs float64 reference through ~10 layers: observed ~1e-6; 1e-5 leaves room for other adapters. */
const REFERENCE_RTOL = 1e-5;

function lossLayers(p: TrainProgram) {
  return p.graph.yolo.layers.map((l, i) => ({
    ny: p.heads[i].shape[2],
    nx: p.heads[i].shape[3],
    anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
  }));
}

gpuTest(
  "the program's heads, loss items and parameter gradients (every Conv -> SiLU fused) match the float64 " +
    "reference program",
  async (device) => {
    device.pushErrorScope("validation");
    const p = programFor(device, new ProgramCache(device), { batch: 2 });
    assertSilusFused(p);
    const { images, targets } = batch(2, 4);
    const items = await p.step(images, targets);
    assert.equal((await device.popErrorScope())?.message, undefined);
    const shapes = inferShapes(model, p.graph, 2, IMGSZ, IMGSZ);
    const ref = referenceStep(
      model,
      p.graph,
      shapes,
      images,
      targets,
      lossLayers(p),
      lossSettings(HYP, 3, 3, IMGSZ),
    );
    for (let i = 0; i < 3; i++) {
      assert.ok(
        relL2(await readF32(device, p.heads[i].buffer, ref.heads[i].length), ref.heads[i]) < REFERENCE_RTOL,
      );
    }
    [items.box, items.obj, items.cls].forEach((v, i) => {
      assert.ok(
        Math.abs(v - ref.items[i]) <= REFERENCE_RTOL * ref.items[i],
        `item ${i}: ${v} vs ${ref.items[i]}`,
      );
    });
    const g = await grads(device, p);
    for (const e of p.layout.entries) {
      const err = relL2(slice(p, g, e.name), ref.grads.get(e.name)!);
      assert.ok(err < REFERENCE_RTOL, `${e.name}: relative L2 ${err}`);
    }
  },
);

gpuTest(
  "freeze 3 skips frozen weight gradients and the backward below them, leaving the rest unchanged",
  async (device) => {
    const programs = new ProgramCache(device);
    const all = programFor(device, programs, { batch: 2 });
    const frozen = programFor(device, programs, { batch: 2, freeze: 3 });
    assert.ok(frozen.backwardDispatches.length < all.backwardDispatches.length);
    const { images, targets } = batch(2, 5);
    const a = await all.step(images, targets);
    const f = await frozen.step(images, targets);
    assert.ok(Math.abs(a.loss - f.loss) <= SAME_RTOL * a.loss);
    const ga = await grads(device, all), gf = await grads(device, frozen);
    for (const e of frozen.layout.entries) {
      const got = slice(frozen, gf, e.name);
      if (e.frozen) {
        assert.ok(/^model\.[0-2]\./.test(e.name), e.name);
        assert.ok(got.every((v) => v === 0), `${e.name} is frozen but has a gradient`);
      } else {
        assert.ok(
          relL2(got, slice(all, ga, e.name)) < SAME_RTOL,
          `${e.name} differs when layers 0-2 are frozen`,
        );
      }
    }
  },
);

gpuTest(
  "freeze 10 (yolov5n's backbone): backward-data into a Concat computes only the channels of its trainable " +
    "inputs, and every trainable gradient is as without the freeze",
  async (device) => {
    // The yolov5n architecture: its neck concatenates upsampled neck outputs with backbone layers 6 and 4.
    const yolo = newModel({ nc: 3, depth: 0.33, width: 0.25, imgsz: IMGSZ });
    const programs = new ProgramCache(device);
    const make = (freeze: number) =>
      TrainProgram.create(device, yolo, { batch: 2, imgsz: IMGSZ, hyp: HYP, programs, freeze });
    const all = make(0), frozen = make(10);
    // Backward-data's work from the graph: per conv of layers 10 and up, 2 * taps * cout * pixels * images for
    // each input channel made by layers 10 and up (a backbone output takes no gradient, nor does its part of a
    // Concat).
    const graph = frozen.graph;
    const shapes = inferShapes(yolo, graph, 2, IMGSZ, IMGSZ);
    const layer = (t: string) =>
      Number(/^\/model\.(\d+)\//.exec(graph.nodes.find((n) => n.y === t)!.name)![1]);
    const trainableChannels = (t: string): number => {
      const node = graph.nodes.find((n) => n.y === t)!;
      if (node.op === "concat") return node.xs.reduce((s, x) => s + trainableChannels(x), 0);
      return layer(t) >= 10 ? shapes.get(t)![1] : 0;
    };
    let expected = 0, concats = 0;
    for (const n of graph.nodes) {
      if (n.op !== "conv" || layer(n.y) < 10) continue;
      const [, cin] = shapes.get(n.x)!, [images, cout, ho, wo] = shapes.get(n.y)!;
      const [, , kh, kw] = tensorDims(yolo.initializer(n.weight)!);
      const read = trainableChannels(n.x);
      if (read > 0 && read < cin) concats++;
      expected += 2 * kh * kw * cout * ho * wo * images * read;
    }
    assert.equal(concats, 4, "C3 cv1 and cv2 of layers 13 and 17 read a Concat with a backbone output");
    const backwardData = frozen.backwardDispatches.filter((d) => d.label.endsWith(" backward_data"));
    assert.equal(backwardData.reduce((s, d) => s + d.flops!, 0), expected);

    const { images, targets } = batch(2, 9);
    const a = await all.step(images, targets);
    const f = await frozen.step(images, targets);
    assert.ok(Math.abs(a.loss - f.loss) <= SAME_RTOL * a.loss);
    const ga = await grads(device, all), gf = await grads(device, frozen);
    for (const e of frozen.layout.entries.filter((e) => !e.frozen)) {
      assert.ok(relL2(slice(frozen, gf, e.name), slice(all, ga, e.name)) < SAME_RTOL, e.name);
    }
    all.destroy();
    frozen.destroy();
  },
);

gpuTest("steps add their gradients into the flat buffer until the optimizer zeroes it", async (device) => {
  const p = programFor(device, new ProgramCache(device), { batch: 2 });
  const { images, targets } = batch(2, 6);
  await p.step(images, targets);
  const once = await grads(device, p);
  assert.ok(once.some((v) => v !== 0));
  await p.step(images, targets);
  const twice = await grads(device, p);
  assert.ok(relL2(twice, once.map((v) => 2 * v)) < SAME_RTOL);
});

gpuTest("a short batch trains exactly like a program planned for that batch size", async (device) => {
  const programs = new ProgramCache(device);
  const two = programFor(device, programs, { batch: 2 });
  const one = programFor(device, programs, { batch: 1 });
  const { images, targets } = batch(1, 7);
  const a = await two.step(images, targets, 1);
  const b = await one.step(images, targets);
  assert.ok(Math.abs(a.loss - b.loss) <= SAME_RTOL * b.loss, `${a.loss} vs ${b.loss}`);
  assert.ok(relL2(await grads(device, two), await grads(device, one)) < SAME_RTOL);
});

gpuTest("recomputeColumns trains the same with less op scratch", async (device) => {
  const programs = new ProgramCache(device);
  const kept = programFor(device, programs, { batch: 2 });
  const lean = programFor(device, programs, { batch: 2, recomputeColumns: true });
  const { images, targets } = batch(2, 8);
  const a = await kept.step(images, targets);
  const b = await lean.step(images, targets);
  assert.ok(Math.abs(a.loss - b.loss) <= SAME_RTOL * a.loss, `${a.loss} vs ${b.loss}`);
  assert.ok(relL2(await grads(device, lean), await grads(device, kept)) < SAME_RTOL);
  assert.ok(lean.scratchBytes < kept.scratchBytes, `${lean.scratchBytes} vs ${kept.scratchBytes} bytes`);
});

gpuTest("the forward-only program computes the training program's raw heads", async (device) => {
  const programs = new ProgramCache(device);
  const train = programFor(device, programs, { batch: 2 });
  const evalProgram = programFor(device, programs, { batch: 2, training: false });
  assert.equal(evalProgram.backwardDispatches.length, 0);
  const { images, targets } = batch(2, 8);
  await train.step(images, targets);
  const heads = await evalProgram.forward(images);
  for (let i = 0; i < heads.length; i++) {
    const want = await readF32(device, train.heads[i].buffer, heads[i].length);
    assert.deepEqual(heads[i], want);
  }
  // evaluate()'s layout: (count, na, ny, nx, no) of the first `count` images.
  const layers = await evalProgram.forwardLayers(images.subarray(0, 3 * IMGSZ * IMGSZ), 1);
  const [, c, ny, nx] = train.heads[0].shape;
  const no = c / 3;
  assert.equal(layers[0].data.length, 3 * ny * nx * no);
  const probe = (a: number, y: number, x: number, f: number) => ((a * ny + y) * nx + x) * no + f;
  assert.equal(layers[0].data[probe(2, 1, 3, 4)], heads[0][((2 * no + 4) * ny + 1) * nx + 3]);
});

/** float64 central differences on smooth pieces of the loss; the step is divided by what the float32
 * initializer actually stored. */
const REF_FD_STEP = 1e-3;
const REF_FD_RTOL = 1e-4;

Deno.test("the float64 reference program's parameter gradients match finite differences", () => {
  const { images, targets } = batch(1, 10);
  const local = tinyModel(3, IMGSZ);
  const graph = buildTrainGraph(local);
  const shapes = inferShapes(local, graph, 1, IMGSZ, IMGSZ);
  const layers = graph.yolo.layers.map((l, i) => ({
    ny: shapes.get(graph.heads[i])![2],
    nx: shapes.get(graph.heads[i])![3],
    anchors: l.anchors.map(([w, h]) => [w / l.stride, h / l.stride] as [number, number]),
  }));
  const settings = lossSettings(HYP, 3, 3, IMGSZ);
  const base = referenceStep(local, graph, shapes, images, targets, layers, settings);
  for (
    const name of [
      "model.0.conv.weight",
      "model.2.m.0.cv1.conv.bias",
      "model.2.cv3.conv.weight",
      "model.6.m.1.weight",
    ]
  ) {
    const g = base.grads.get(name)!;
    let k = 0;
    for (let j = 0; j < g.length; j++) if (Math.abs(g[j]) > Math.abs(g[k])) k = j;
    const original = local.getInitializer(name).data;
    const at = (delta: number) => {
      const data = original.slice();
      data[k] += delta;
      local.setInitializer(name, data);
      stored.push(data[k]);
      // CIoU's alpha and the objectness targets are detached (constants to autograd), so they are held fixed.
      return referenceStep(local, graph, shapes, images, targets, layers, settings, undefined, base.detached)
        .loss;
    };
    const stored: number[] = [];
    const numeric = (at(REF_FD_STEP) - at(-REF_FD_STEP)) / (stored[0] - stored[1]);
    local.setInitializer(name, original);
    assert.ok(
      Math.abs(numeric - g[k]) <= REF_FD_RTOL * Math.abs(g[k]),
      `${name}[${k}]: ${g[k]} vs ${numeric}`,
    );
  }
});
