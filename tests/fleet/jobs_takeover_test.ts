/**
 * Fleet jobs across processes: a fine-tune posted to a node with jobs off runs on a node with jobs on; kill -9 of
 * that node mid-job makes the other jobs-on node take it over from its checkpoint and publish the result, which
 * every node then serves. The shared state records where it ran and how often, and every node's `/v1/jobs` shows it.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import sharp from "sharp";
import { FleetJobSchema } from "../../src/fleet/job_state.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { NatsServer, NO_NATS } from "../../src/fleet/local_nats.ts";
import { oneFrameFinetuneForm } from "./_fleet_job.ts";
import { Node, until, WAIT_MS } from "./_node_child.ts";

const png = async () =>
  new Uint8Array(
    await sharp({ create: { width: 32, height: 32, channels: 3, background: { r: 20, g: 120, b: 200 } } })
      .png().toBuffer(),
  );

/** The events of an SSE stream, read until the server ends it (bounded by WAIT_MS). */
async function readEvents(url: string): Promise<{ type: string; job: { status: string; node: string } }[]> {
  const res = await fetch(url, { signal: AbortSignal.timeout(WAIT_MS) });
  assert.equal(res.status, 200);
  const text = await res.text();
  return text.split("\n").filter((l) => l.startsWith("data: ")).map((l) => JSON.parse(l.slice(6)));
}

Deno.test({
  name:
    "fleet jobs: a job posted to a jobs-off node runs elsewhere; kill -9 mid-job, another node resumes it",
  ignore: NO_NATS !== null,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-fleet-jobs-" });
    const nats = await NatsServer.start(dir);
    const modelPath = join(dir, "tiny.onnx");
    await Deno.writeFile(modelPath, tinyYolo({ seed: 1 }));
    const nodes: Node[] = [];
    const start = async (name: string, jobs: string) => {
      const node = await Node.start(name, [
        ...["--port", "0", "--backend", "native", "--data-dir", join(dir, name), "--model", modelPath],
        ...["--nats", nats.url, "--node", name, "--fleet", "jobs", "--jobs", jobs],
      ]);
      nodes.push(node);
      await node.waitFor(/fleet: node \S+ joined/);
      return node;
    };
    try {
      const submitter = await start("a", "off");
      const workers = [await start("b", "on"), await start("c", "on")];

      const form = await oneFrameFinetuneForm(4);
      const res = await fetch(`${submitter.url}/v1/models/tiny/finetune`, { method: "POST", body: form });
      const job = await res.json();
      assert.equal(res.status, 202, JSON.stringify(job));

      const first = await until(
        "a node to take the job",
        () => workers.find((w) => w.log.some((l) => l.includes(`job ${job.id} checkpoint 1`))) ?? null,
      );
      assert.ok(
        !submitter.log.some((l) => l.includes(`job ${job.id} starts`)),
        "the jobs-off node never trains",
      );
      // A node that neither posted nor runs the job lists it, with where it runs.
      const other = workers.find((w) => w !== first)!;
      const running = await (await fetch(`${other.url}/v1/jobs`)).json();
      const seen = running.jobs.find((j: { id: string }) => j.id === job.id);
      assert.equal(seen?.status, "running", JSON.stringify(running));
      assert.equal(seen?.node, first.name);
      assert.equal(seen?.attempts, 1);
      // ... and streams its events from the fleet's state, through the takeover to the end.
      const streamed = readEvents(`${other.url}/v1/jobs/${job.id}/events`);
      first.child.kill("SIGKILL");
      await first.child.status;
      const [, resumedAt] = await other.waitFor(new RegExp(`job ${job.id} starts at epoch (\\d+)`));
      assert.ok(Number(resumedAt) >= 1, `resumed from the checkpoint, not from scratch (epoch ${resumedAt})`);

      const done = await until("the job to succeed on the submitting node", async () => {
        const body = await (await fetch(`${submitter.url}/v1/jobs/${job.id}`)).json();
        assert.ok(body.status !== "failed" && body.status !== "cancelled", JSON.stringify(body));
        return body.status === "succeeded" ? body : null;
      });
      // Any node shows the fleet job: where it ran last and how often it started.
      const listed = await (await fetch(`${other.url}/v1/fleet/jobs`)).json();
      const state = FleetJobSchema.array().parse(listed.jobs).find((j) => j.job.id === job.id);
      assert.equal(state?.status, "succeeded");
      assert.equal(state?.node, other.name);
      assert.equal(state?.attempts, 2);
      assert.equal(state?.result?.resultVersion, done.resultVersion);
      // The job record on every node says the same, each job listed once.
      assert.equal(done.node, other.name);
      assert.equal(done.attempts, 2);
      const onRunner = await (await fetch(`${other.url}/v1/jobs/${job.id}`)).json();
      assert.deepEqual(
        [onRunner.status, onRunner.node, onRunner.attempts, onRunner.resultVersion],
        ["succeeded", other.name, 2, done.resultVersion],
      );
      const events = await streamed;
      assert.equal(events[0].job.node, first.name);
      assert.deepEqual(
        [events.at(-1)!.type, events.at(-1)!.job.status, events.at(-1)!.job.node],
        ["status", "succeeded", other.name],
      );
      assert.ok(
        events.some((e) => e.type === "status" && e.job.status === "running" && e.job.node === other.name),
        "the takeover is a status event",
      );
      const listedOnSubmitter = (await (await fetch(`${submitter.url}/v1/jobs`)).json()).jobs;
      assert.equal(listedOnSubmitter.filter((j: { id: string }) => j.id === job.id).length, 1);
      // The result is published fleet-wide: the submitter serves it.
      await until("the submitter to serve the result", async () => {
        const r = await fetch(`${submitter.url}/v1/models/tiny/detect`, {
          method: "POST",
          headers: { "content-type": "image/png" },
          body: await png(),
        });
        const body = await r.json();
        assert.equal(r.status, 200, JSON.stringify(body));
        return body.model.version === done.resultVersion ? true : null;
      });
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
