/**
 * TEST CHILD, not product code: `serve` (the real server, job service, registry and serving) with a GPU-free
 * trainer, for tests/jobs/kill9_test.ts. With `KILL9_PHASE` set, the process freezes (its whole event loop
 * blocks) the first time it reaches that phase of a fine-tune job, after writing the phase to `KILL9_MARK`, so
 * the test's SIGKILL lands exactly there:
 * - `unpack`: the upload is being received into its staging file, not yet acknowledged;
 * - `training`: in the last epoch, after the previous epoch's checkpoint;
 * - `checkpoint`: the checkpoint's state file is durable, its pointer not yet replaced;
 * - `publish`: the new version's files are staged and durable, the rename that makes them a version not done;
 * - `activate`: the version exists and serving switched to it, the active pointer not yet replaced.
 * The phases are found by wrapping `Deno.open` and `Deno.rename`, so no test hook lives in product code.
 */
import { basename, join } from "node:path";
import { startServer } from "../../src/api/server.ts";
import { parseServerArgs } from "../../src/config/server.ts";
import { publishResult } from "../../src/jobs/publish.ts";
import type { Job, Trainer, TrainerContext, TrainerResult } from "../../src/jobs/types.ts";
import type { Registry } from "../../src/registry/registry.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const ITERATIONS_PER_EPOCH = 3;
/** The published model: a tiny detector that differs from the served base (seed 1). */
const RESULT_SEED = 7;
/** Longer than any test waits: the parent kills the frozen process well before. */
const FREEZE_MS = 120_000;

const PHASE = Deno.env.get("KILL9_PHASE");
const MARK = Deno.env.get("KILL9_MARK");
let publishing = false;

/** At `phase` (when it is the one asked for): say so, then block the process until it is killed. */
function reach(phase: string): void {
  if (phase !== PHASE || !MARK) return;
  Deno.writeTextFileSync(MARK, phase);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, FREEZE_MS);
}

const fs = Deno as unknown as { open: typeof Deno.open; rename: typeof Deno.rename };
const { open, rename } = { open: Deno.open, rename: Deno.rename };
fs.open = (path, options) => {
  // The upload streamed to its staging file (`.staging-upload-<id>/dataset`) or a file of the staged dataset.
  if (/\/jobs\/\.staging-[^/]+\/dataset(\/|$)/.test(String(path))) reach("unpack");
  return open(path, options);
};
fs.rename = (from, to) => {
  if (basename(String(to)) === "checkpoint.json") reach("checkpoint");
  if (publishing && /\/models\/[^/]+\/\.staging\//.test(String(from))) reach("publish");
  if (publishing && basename(String(to)) === "active.json") reach("activate");
  return rename(from, to);
};

/** Trains nothing: reports iterations, checkpoints after every epoch but the last, publishes through the registry. */
class PhasedTrainer implements Trainer {
  constructor(private readonly registry: Registry) {}

  async run(job: Readonly<Job>, ctx: TrainerContext): Promise<TrainerResult> {
    await Deno.writeTextFile(join(ctx.workDir, "trace.jsonl"), "", { append: true });
    const epochs = job.config.epochs;
    const start = (await ctx.checkpoint.load())?.epoch ?? 0;
    for (let epoch = start; epoch < epochs; epoch++) {
      for (let i = 0; i < ITERATIONS_PER_EPOCH; i++) {
        ctx.signal.throwIfAborted();
        if (epoch === epochs - 1 && i === 1) reach("training");
        const iteration = epoch * ITERATIONS_PER_EPOCH + i + 1;
        ctx.onProgress({ epoch, epochs, iteration, iterations: epochs * ITERATIONS_PER_EPOCH });
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
      if (epoch + 1 < epochs) {
        await ctx.checkpoint.save({
          epoch: epoch + 1,
          iteration: 0,
          state: crypto.getRandomValues(new Uint8Array(4096)),
        });
      }
    }
    publishing = true;
    return await publishResult(this.registry, job, tinyYolo({ seed: RESULT_SEED }), {
      base: null,
      result: null,
    });
  }
}

const server = await startServer(parseServerArgs(Deno.args), {
  trainer: (registry) => new PhasedTrainer(registry),
});
console.error(`kestrel: listening on ${server.url}`);
await server.ready;
