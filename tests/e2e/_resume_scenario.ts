/**
 * The fine-tune a SIGTERM interrupts in the resume tests (one box: tests/e2e/finetune_resume_test.ts; a fleet:
 * tests/fleet/jobs_drain_test.ts): a tiny model, a synthetic dataset posted as a zip, and the uninterrupted run
 * on the same code and WebGPU adapter in this process that the interrupted one must equal byte for byte.
 */
import { join } from "node:path";
import { zipSync } from "fflate";
import { parseFinetuneConfig } from "../../src/config/finetune.ts";
import { getGpu } from "../../src/gpu/device.ts";
import type { Job } from "../../src/jobs/types.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { runFinetune, type RunResult } from "../../src/train/finetune_run.ts";
import { writeSynthDataset } from "../../src/train/synth.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { until as poll } from "../_helpers/poll.ts";

export const MODEL = "tiny";
const IMGSZ = 64;
/** 24 iterations per epoch: the stop lands inside the first epoch, after its first iteration. */
const IMAGES = 48;
// Augmented and shuffled (the resumed epoch must continue the same random stream); no held-out images, no
// activation: nothing but training and publishing.
const CONFIG = {
  imgsz: IMGSZ,
  batch_size: 2,
  epochs: 2,
  augment: true,
  shuffle: true,
  seed: 3,
  val_fraction: 0,
  activate: "never",
};
export const DRAIN_SECONDS = 10;
/** After the drain: closing the pool, the data-dir lock (and a fleet link), and the process exit. */
export const EXIT_MARGIN_MS = 5_000;
/** Pause between probes: the drain tests signal a child mid-training, soon after what they wait for. */
const POLL_MS = 20;

export interface ResumeScenario {
  modelPath: string;
  /** The dataset's directory, which the uninterrupted run reads. */
  setDir: string;
  /** The fine-tune request: the config and the dataset as a zip. */
  form: FormData;
}

/** Writes the model and the dataset under dir. */
export async function writeResumeScenario(dir: string): Promise<ResumeScenario> {
  const modelPath = join(dir, `${MODEL}.onnx`);
  await Deno.writeFile(modelPath, tinyYolo({ nc: 3, imgsz: IMGSZ }));
  const setDir = join(dir, "set");
  const names = await writeSynthDataset(setDir, { n: IMAGES, imgsz: IMGSZ, seed: 4 });
  const files: Record<string, Uint8Array> = {};
  for (const name of names) {
    const stem = name.slice(0, name.lastIndexOf("."));
    files[`images/${name}`] = await Deno.readFile(join(setDir, "images", name));
    files[`labels/${stem}.txt`] = await Deno.readFile(join(setDir, "labels", `${stem}.txt`));
  }
  const form = new FormData();
  form.append("config", JSON.stringify(CONFIG));
  form.append("dataset", new File([zipSync(files) as Uint8Array<ArrayBuffer>], "data.zip"));
  return { modelPath, setDir, form };
}

/** The same fine-tune, never stopped, written under outDir. */
export async function uninterruptedRun(scenario: ResumeScenario, outDir: string): Promise<RunResult> {
  return await runFinetune({
    gpu: await getGpu(),
    model: OnnxModel.parse(await Deno.readFile(scenario.modelPath)),
    config: parseFinetuneConfig(CONFIG),
    dataDir: scenario.setDir,
    outDir,
  });
}

/** A job's record as a server answers it. */
export async function jobRecord(url: string, id: string): Promise<Job> {
  return await (await fetch(`${url}/v1/jobs/${id}`)).json();
}

/** Polls `probe` (tests/_helpers/poll.ts) every POLL_MS for at most `waitMs`. */
export const until = <T>(what: string, waitMs: number, probe: () => Promise<T | null>) =>
  poll(what, waitMs, probe, { pollMs: POLL_MS });
