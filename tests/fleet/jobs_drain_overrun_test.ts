/**
 * A fleet node whose drain checkpoint is not saved within --drain-seconds (the stand-in trainer of _node.ts takes
 * longer than the drain to produce it) still hands its job back and exits 0; the node taking it over resumes from
 * the checkpoint the fleet had (the last epoch end), never from a half-saved one.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import type { Job } from "../../src/jobs/types.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { oneFrameFinetuneForm } from "./_fleet_job.ts";
import { SUSPEND_SAVE_ENV } from "./_node.ts";
import { Node, until } from "./_node_child.ts";

const DRAIN_SECONDS = 2;
/** The stand-in's suspend checkpoint takes this long: far past the drain. */
const SUSPEND_SAVE_MS = 60_000;
/** After the drain: handing the job back, closing the fleet link and the pool, and the process exit. */
const EXIT_MARGIN_MS = 8_000;

Deno.test({
  name:
    "fleet drain: a checkpoint that overruns --drain-seconds still hands the job back; the next node resumes from the previous one",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-overrun-" });
    const nats = await NatsServer.start(dir);
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const nodes: Node[] = [];
    const start = async (name: string) => {
      const node = await Node.start(name, [
        ...["--port", "0", "--backend", "native", "--data-dir", join(dir, name), "--model", modelPath],
        ...["--nats", nats.url, "--node", name, "--fleet", "overrun", "--jobs", "on"],
        ...["--drain-seconds", String(DRAIN_SECONDS)],
      ], { [SUSPEND_SAVE_ENV]: String(SUSPEND_SAVE_MS) });
      nodes.push(node);
      await node.waitFor(/fleet: node \S+ joined/);
      return node;
    };
    try {
      const [a, b] = [await start("a"), await start("b")];
      const form = await oneFrameFinetuneForm(4);
      const res = await fetch(`${a.url}/v1/models/tiny/finetune`, { method: "POST", body: form });
      const job: Job = await res.json();
      assert.equal(res.status, 202, JSON.stringify(job));

      const runner = await until(
        "a node to checkpoint the job's first epoch",
        () => [a, b].find((n) => n.log.some((l) => l.includes(`job ${job.id} checkpoint 1`))) ?? null,
      );
      const other = runner === a ? b : a;
      const signalled = Date.now();
      runner.child.kill("SIGTERM");
      assert.equal((await runner.child.status).code, 0, runner.log.join("\n"));
      const took = Date.now() - signalled;
      assert.ok(took < DRAIN_SECONDS * 1000 + EXIT_MARGIN_MS, `exited after ${took} ms`);
      for (const said of [`job ${job.id} suspended`, "work still in flight", `job ${job.id} handed back`]) {
        assert.ok(runner.log.some((l) => l.includes(said)), `'${said}' in:\n${runner.log.join("\n")}`);
      }
      const saved = runner.log.map((l) => l.match(new RegExp(`job ${job.id} checkpoint (\\d+)`)))
        .filter((m) => m !== null).map((m) => Number(m[1]));
      const [, epoch, iteration] = await other.waitFor(
        new RegExp(`job ${job.id} starts at epoch (\\d+), iteration (\\d+)`),
      );
      assert.deepEqual(
        [Number(epoch), Number(iteration)],
        [Math.max(...saved), 0],
        "resumed from the last checkpoint saved in full: the last epoch end",
      );

      const done = await until("the job to succeed on the other node", async () => {
        const body: Job = await (await fetch(`${other.url}/v1/jobs/${job.id}`)).json();
        assert.ok(body.status !== "failed" && body.status !== "cancelled", JSON.stringify(body));
        return body.status === "succeeded" ? body : null;
      });
      assert.deepEqual([done.node, done.attempts], [other.name, 2]);
    } catch (err) {
      for (const node of nodes) console.error(`--- ${node.name}\n${node.log.join("\n")}`);
      throw err;
    } finally {
      for (const node of nodes) await node.stop();
      await nats.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
