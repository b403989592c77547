// Acceptance check of the whole training program against PyTorch (issue 4): the yolov5n export at 320, batch 2
// (the first two images of the reference data's golden/finetune-sgd in sorted order), one forward + loss + backward.
import assert from "node:assert/strict";
import { gpuTest } from "../_helpers/gpu.ts";
import { readF32 } from "../../src/gpu/buffers.ts";
import { decodeImage } from "../../src/image/decode.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { TrainProgram } from "../../src/train/program.ts";
import { KERNEL_FAMILIES, type KernelFamily } from "../../src/ops/kernel_family.ts";
import type { LossItems } from "../../src/train/loss.ts";
import {
  debug0,
  GOLDEN,
  GOLDEN_FILES,
  goldenHeads,
  goldenParams,
  goldenTargets,
  readF32File,
  relL2,
  scenario,
  YOLOV5N,
} from "./_golden.ts";
import { toConvLayout } from "./_cases.ts";
import { assertSilusFused } from "./_fusion.ts";
import { referenceData } from "../_helpers/reference.ts";

const REFERENCE = referenceData(import.meta.url, ...GOLDEN_FILES);

/** Acceptance bounds from issue 4. */
const HEAD_RTOL = 1e-4;
const ITEMS_RTOL = 1e-3;
const GRAD_RTOL = 1e-3;

/** NCHW RGB / 255 of 320x320 PNGs, as train.py feeds them (no resize happens at 320). */
export async function goldenImages(count: number): Promise<Float32Array> {
  const paths = scenario().images_in_order.slice(0, count);
  const first = await decodeImage(Deno.readFileSync(new URL(paths[0], GOLDEN)));
  const hw = first.width * first.height;
  const out = new Float32Array(count * 3 * hw);
  for (let b = 0; b < count; b++) {
    const img = b === 0 ? first : await decodeImage(Deno.readFileSync(new URL(paths[b], GOLDEN)));
    for (let i = 0; i < hw; i++) {
      for (let c = 0; c < 3; c++) out[(b * 3 + c) * hw + i] = img.data[i * 3 + c] / 255;
    }
  }
  return out;
}

/** One program per kernel family (the device's by default), shared by the tests (planning at 320 costs seconds
 * on lavapipe). */
const shared = new Map<KernelFamily | undefined, Promise<{ program: TrainProgram; items: LossItems }>>();
function goldenStep(device: GPUDevice, kernels?: KernelFamily) {
  let step = shared.get(kernels);
  if (!step) {
    step = (async () => {
      const sc = scenario();
      const model = OnnxModel.parse(Deno.readFileSync(YOLOV5N));
      const program = TrainProgram.create(device, model, {
        batch: sc.batch_size,
        imgsz: sc.imgsz,
        hyp: sc.hyp,
        freeze: sc.freeze,
        kernels,
      });
      const items = await program.step(await goldenImages(sc.batch_size), goldenTargets(sc.batch_size));
      return { program, items };
    })();
    shared.set(kernels, step);
  }
  return step;
}

gpuTest(
  "yolov5n at 320, end to end: the raw heads and loss items match PyTorch's iteration 0",
  async (device) => {
    const dbg = debug0();
    const { program, items } = await goldenStep(device);
    const heads = goldenHeads();
    for (let i = 0; i < heads.length; i++) {
      const [bs, na, ny, nx] = dbg.head_shapes[i];
      const got = await readF32(device, program.heads[i].buffer, heads[i].length);
      const err = relL2(got, toConvLayout(heads[i], bs, na, ny, nx));
      assert.ok(err < HEAD_RTOL, `head ${i}: relative L2 ${err}`);
    }
    [items.box, items.obj, items.cls].forEach((v, i) => {
      const err = Math.abs(v - dbg.loss_items[i]) / dbg.loss_items[i];
      assert.ok(err < ITEMS_RTOL, `loss item ${i}: ${v} vs ${dbg.loss_items[i]}`);
    });
    // End-to-end gradients sit on the knife edge described below: logged here, asserted in the next test.
    worstGradient(await readF32(device, program.grads!, program.layout.size), program);
  },
  REFERENCE,
);

// The bus label at P5 (anchor 0, cell 5,8) was made by this same model, so its predicted box's bottom edge lies
// within one float32 ulp of the label's: which side of CIoU's min/max kink it falls on depends on the last bits of
// the forward pass, and the sides differ by ~13% in that head's bias gradient (~2% everywhere below it). With the
// loss evaluated at PyTorch's own heads that coin flip is gone, and the loss gradient and every backward kernel
// are checked against grads0.f32 (a float64 reference of the same computation agrees to 7e-6).
for (const kernels of KERNEL_FAMILIES) {
  gpuTest(
    `with the loss at PyTorch's heads, every parameter gradient matches grads0 (${kernels} kernels)`,
    async (device) => {
      const { program } = await goldenStep(device, kernels);
      // Every conv GEMM of the step is the family's own (a silent fallback would not test it).
      const file = kernels === "tiled" ? "ops/gemm_tiled.wgsl:" : "ops/conv.wgsl:";
      const gemms = program.stepDispatches.map((d) => d.pipeline.label).filter((l) => /:gemm_/.test(l));
      assert.ok(gemms.length > 0 && gemms.every((l) => l.startsWith(file)), `GEMMs: ${[...new Set(gemms)]}`);
      assertSilusFused(program);
      await checkGradients(device, program);
    },
    REFERENCE,
  );
}

async function checkGradients(device: GPUDevice, program: TrainProgram): Promise<void> {
  const dbg = debug0();
  const sc = scenario();
  program.setBatch(await goldenImages(sc.batch_size), goldenTargets(sc.batch_size));
  const forward = device.createCommandEncoder();
  program.encodeForward(forward);
  device.queue.submit([forward.finish()]);
  goldenHeads().forEach((h, i) => {
    const [bs, na, ny, nx] = dbg.head_shapes[i];
    device.queue.writeBuffer(
      program.heads[i].buffer,
      program.heads[i].offset * 4,
      toConvLayout(h, bs, na, ny, nx),
    );
  });
  const encoder = device.createCommandEncoder();
  encoder.clearBuffer(program.grads!);
  program.encodeBackward(encoder);
  device.queue.submit([encoder.finish()]);
  const items = await program.readItems();
  [items.box, items.obj, items.cls].forEach((v, i) => {
    assert.ok(Math.abs(v - dbg.loss_items[i]) / dbg.loss_items[i] < ITEMS_RTOL, `item ${i}: ${v}`);
  });
  const worst = worstGradient(await readF32(device, program.grads!, program.layout.size), program);
  assert.ok(worst.err < GRAD_RTOL, `worst gradient ${worst.name}: relative L2 ${worst.err}`);
}

function worstGradient(grads: Float32Array, program: TrainProgram): { name: string; err: number } {
  const want = readF32File("grads0.f32");
  let worst = { name: "", err: 0 };
  for (const p of goldenParams()) {
    const e = program.layout.byName.get(p.name)!;
    const size = p.shape.reduce((a, b) => a * b, 1);
    const err = relL2(grads.subarray(e.offset, e.offset + size), want.subarray(p.offset, p.offset + size));
    if (!(err <= worst.err)) worst = { name: p.name, err };
  }
  console.log(`worst parameter gradient: ${worst.name} relative L2 ${worst.err.toExponential(2)}`);
  return worst;
}
