/** Shared pieces of the fine-tune tests: a Gpu around the shared test device, small models and datasets. */
import type { Gpu } from "../../src/gpu/device.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import type { FinetuneConfigInput } from "../../src/config/finetune.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

export function testGpu(device: GPUDevice): Gpu {
  return { device, adapterName: "test", isFallback: true, hasF16: false, hasTimestamps: false };
}

/** 1x1 head convs straight on the image: trains in milliseconds, enough to drive the loop. */
export const TINY_IMGSZ = 64;
export const tinyModel = () => OnnxModel.parse(tinyYolo({ nc: 3, imgsz: TINY_IMGSZ }));

/** A synthesised shapes dataset (3 classes) in a fresh temporary directory. */
export async function synthDir(n: number, imgsz: number, seed = 1): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-ft-" });
  await writeSynthDataset(dir, { n, imgsz, seed });
  return dir;
}

export function tinyConfig(overrides: FinetuneConfigInput = {}) {
  return parseFinetuneConfig({
    imgsz: TINY_IMGSZ,
    batch_size: 3,
    epochs: 3,
    augment: false,
    shuffle: false,
    val_fraction: 0,
    ...overrides,
  });
}
