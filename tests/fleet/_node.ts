/**
 * A fleet node as its own process (so a test can kill -9 it): `deno run -A tests/fleet/_node.ts <serve flags>`.
 * It serves like `deno task start` but fine-tunes with a stand-in trainer: each epoch sleeps EPOCH_MS and saves a
 * checkpoint; the result is a fresh tiny model published (and activated) through the registry, with the epoch it
 * resumed from in its metrics. It prints `listening <url>` on stdout once models are loaded. With
 * KESTREL_STANDIN_SUSPEND_SAVE_MS set it honours a drain's suspend, as the real trainer does, but takes that long
 * to produce the suspend's checkpoint (a save that outlasts the drain).
 */
import { startServer } from "../../src/api/server.ts";
import { parseServerArgs } from "../../src/config/server.ts";
import type { Trainer } from "../../src/jobs/types.ts";
import type { Registry } from "../../src/registry/registry.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

/** One stand-in epoch: long enough for a test to kill the node between checkpoints. */
export const EPOCH_MS = 1500;
/** Seed of the stand-in result model (not the seed of any model the tests upload). */
export const RESULT_SEED = 100;
export const SUSPEND_SAVE_ENV = "KESTREL_STANDIN_SUSPEND_SAVE_MS";

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(signal.reason);
    }, { once: true });
  });
}

function sleepyTrainer(registry: Registry): Trainer {
  const suspendSaveMs = Deno.env.get(SUSPEND_SAVE_ENV);
  return {
    async run(job, ctx) {
      const checkpoint = await ctx.checkpoint.load();
      const resumed = checkpoint?.epoch ?? 0;
      console.error(
        `node: job ${job.id} starts at epoch ${resumed}, iteration ${checkpoint?.iteration ?? 0}`,
      );
      const epochs = job.config.epochs;
      for (let epoch = resumed; epoch < epochs; epoch++) {
        const suspend = suspendSaveMs !== undefined ? ctx.suspend : undefined;
        await sleep(EPOCH_MS, suspend ? AbortSignal.any([ctx.signal, suspend]) : ctx.signal).catch((err) => {
          if (!suspend?.aborted || ctx.signal.aborted) throw err;
        });
        if (suspend?.aborted) {
          console.error(
            `node: job ${job.id} suspended in epoch ${epoch}; its checkpoint takes ${suspendSaveMs} ms`,
          );
          await sleep(Number(suspendSaveMs), ctx.signal);
          await ctx.checkpoint.save({
            epoch,
            iteration: 1,
            state: new TextEncoder().encode(`in epoch ${epoch}`),
          });
          throw suspend.reason;
        }
        ctx.onProgress({ epoch, iterations: epochs, iteration: epoch + 1 });
        await ctx.checkpoint.save({
          epoch: epoch + 1,
          iteration: 0,
          state: new TextEncoder().encode(`after epoch ${epoch}`),
        });
        console.error(`node: job ${job.id} checkpoint ${epoch + 1}`);
      }
      const metrics = { resumed_from_epoch: resumed };
      const meta = await registry.add(job.model, tinyYolo({ seed: RESULT_SEED }), {
        source: { type: "finetune", job_id: job.id },
        parent: job.baseVersion,
        metrics,
        activate: true,
      });
      return { resultVersion: meta.version, activated: true, metrics };
    },
  };
}

if (import.meta.main) {
  const server = await startServer(parseServerArgs(Deno.args), { trainer: sleepyTrainer });
  await server.ready;
  console.log(`listening ${server.url}`);
  Deno.addSignalListener("SIGTERM", async () => {
    await server.shutdown();
    Deno.exit(0);
  });
}
