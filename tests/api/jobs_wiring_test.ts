import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import sharp from "sharp";
import { startServer } from "../../src/api/server.ts";
import { parseServerArgs } from "../../src/config/server.ts";
import { ITERATIONS_PER_EPOCH, TestTrainer } from "../jobs/_test_trainer.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

const png = async () =>
  new Uint8Array(
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 20, g: 120, b: 200 } } })
      .png()
      .toBuffer(),
  );

async function boot(dir: string, trainer: TestTrainer) {
  const config = parseServerArgs([
    "--port",
    "0",
    "--backend",
    "native",
    "--data-dir",
    join(dir, "data"),
    "--model",
    join(dir, "tiny.onnx"),
  ]);
  const server = await startServer(config, { trainer: () => trainer });
  await server.ready;
  return server;
}

Deno.test({
  name:
    "serve: jobs live in the data dir; a job stopped by shutdown resumes at the next start from the iteration it was at",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-jobs-wiring-" });
    try {
      await Deno.writeFile(join(dir, "tiny.onnx"), tinyYolo());
      const first = new TestTrainer();
      // Held in epoch 1 of 2, after epoch 0's checkpoint.
      const hold = first.holdAt(ITERATIONS_PER_EPOCH + 1);
      const a = await boot(dir, first);
      const form = new FormData();
      form.append("config", JSON.stringify({ epochs: 2 }));
      const label = new TextEncoder().encode("0 0.5 0.5 0.3 0.3\n");
      form.append(
        "dataset",
        new File([zipSync({ "images/a.png": await png(), "labels/a.txt": label })], "d.zip"),
      );
      const res = await fetch(`${a.url}/v1/models/tiny/finetune`, { method: "POST", body: form });
      const job = await res.json();
      assert.equal(res.status, 202, JSON.stringify(job));
      await hold.reached;

      const detect = await fetch(`${a.url}/v1/models/tiny/detect`, {
        method: "POST",
        body: await png(),
        headers: { "content-type": "image/png" },
      });
      assert.equal(detect.status, 200, "detect is served while a job trains");
      await detect.body?.cancel();
      const running = await (await fetch(`${a.url}/v1/jobs/${job.id}`)).json();
      assert.deepEqual([running.status, running.checkpoint?.epoch], ["running", 1]);
      await a.shutdown();

      const second = new TestTrainer();
      const b = await boot(dir, second);
      try {
        await b.jobs.idle();
        const done = await (await fetch(`${b.url}/v1/jobs/${job.id}`)).json();
        assert.deepEqual([done.status, done.attempts], ["succeeded", 2]);
        // The shutdown checkpointed the job where it was held (not only after epoch 0), and it went on there.
        assert.deepEqual(second.calls.map((c) => [c.jobId, c.startEpoch, c.startIterations]), [
          [job.id, 1, ITERATIONS_PER_EPOCH + 1],
        ]);
      } finally {
        await b.shutdown();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("--max-dataset-bytes sets the fine-tune upload limit (default 1 GiB)", () => {
  assert.equal(parseServerArgs([]).maxDatasetBytes, 1024 ** 3);
  assert.equal(parseServerArgs(["--max-dataset-bytes", "5000"]).maxDatasetBytes, 5000);
  assert.throws(() => parseServerArgs(["--max-dataset-bytes", "0"]), /maxDatasetBytes/);
});
