// kill -9 matrix for fine-tune jobs: a real server process (tests/jobs/_kill9_server.ts: the real job service,
// registry and serving, a GPU-free trainer) is SIGKILLed at each phase of a job — while the upload is stored,
// while training, mid checkpoint write, mid publish, mid activation — and restarted on the same data dir. After
// the restart the job ends succeeded with exactly one published, active version (or, killed before it was
// acknowledged, does not exist), the registry and job records agree, and nothing half-written is left.
import assert from "node:assert/strict";
import { join } from "node:path";
import { zipSync } from "fflate";
import sharp from "sharp";
import type { Job } from "../../src/jobs/types.ts";
import { OnnxModel } from "../../src/onnx/model.ts";
import { inspectYolo } from "../../src/onnx/yolo.ts";
import { FsStore } from "../../src/registry/fs_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";
import { type ChildServer, startChild } from "../registry/_child_server.ts";
import { until as poll } from "../_helpers/poll.ts";

const ENTRY = ["tests/jobs/_kill9_server.ts"];
const PHASES = ["unpack", "training", "checkpoint", "publish", "activate"] as const;
type Phase = typeof PHASES[number];
/** The child reaches any phase within seconds; this bounds a run where it never does. */
const PHASE_TIMEOUT_MS = 60_000;
/** The resumed job ends within seconds (nothing is trained); this bounds a run where it never does. */
const END_TIMEOUT_MS = 60_000;
/** Pause between probes: a phase is SIGKILLed soon after its mark appears. */
const POLL_MS = 20;
const until = <T>(what: string, waitMs: number, probe: () => Promise<T | null>) =>
  poll(what, waitMs, probe, { pollMs: POLL_MS });

async function upload(): Promise<FormData> {
  const files: Record<string, Uint8Array> = {};
  for (let i = 0; i < 4; i++) {
    const background = { r: 30 * i, g: 90, b: 160 };
    files[`images/im${i}.png`] = new Uint8Array(
      await sharp({ create: { width: 32, height: 32, channels: 3, background } }).png().toBuffer(),
    );
    files[`labels/im${i}.txt`] = new TextEncoder().encode(`${i % 2} 0.5 0.5 0.25 0.25\n`);
  }
  const form = new FormData();
  form.append("config", JSON.stringify({ epochs: 2, activate: "always" }));
  form.append("dataset", new File([zipSync(files) as Uint8Array<ArrayBuffer>], "data.zip"));
  return form;
}

const exists = (path: string) => Deno.stat(path).then(() => true, () => false);
const getJson = async (server: ChildServer, path: string) =>
  await (await fetch(`${server.base}${path}`)).json();

/** Every path under `dir`, relative to it. */
async function walk(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const rel = join(prefix, entry.name);
    out.push(rel);
    if (entry.isDirectory) out.push(...await walk(join(dir, entry.name), rel));
  }
  return out;
}

/**
 * The data dir after the restart: no staged upload, staged version or temp file left; every version whole (its
 * bytes match its sha256 and parse as a YOLO detector); jobs that ended keep only their record.
 */
async function assertNothingHalfWritten(dataDir: string, jobs: Job[]) {
  const paths = await walk(dataDir);
  // The registry's work areas may stay as empty directories; nothing may be left in them.
  const leftovers = paths.filter((p) => /\/\.(staging|trash)\/|^jobs\/\.staging-|\.tmp-/.test(p));
  assert.deepEqual(leftovers, [], "staging areas and temp files are gone");
  const registry = await Registry.open(new FsStore(dataDir), { maxBytes: 1 << 20 });
  for (const meta of registry.model("tiny").versions) {
    inspectYolo(OnnxModel.parse(await registry.read("tiny", meta.version)));
  }
  const jobDirs = paths.filter((p) => /^jobs\/[^/]+$/.test(p)).map((p) => p.slice("jobs/".length));
  assert.deepEqual(jobDirs.sort(), jobs.map((j) => j.id).sort(), "a directory per job, no other");
  for (const job of jobs) {
    assert.deepEqual(paths.filter((p) => p.startsWith(`jobs/${job.id}/`)), [`jobs/${job.id}/job.json`]);
  }
}

async function killAt(phase: Phase, dir: string): Promise<string> {
  const dataDir = join(dir, phase);
  const mark = join(dir, `${phase}.mark`);
  const args = ["--model", join(dir, "tiny.onnx")];
  const crashing = await startChild(dataDir, args, {
    entry: ENTRY,
    env: { KILL9_PHASE: phase, KILL9_MARK: mark },
  });
  try {
    // Killed in `unpack`, the request gets no answer; in later phases its 202 may or may not have gone out.
    const posted = fetch(`${crashing.base}/v1/models/tiny/finetune`, { method: "POST", body: await upload() })
      .then((res) => res.body?.cancel(), () => {});
    await until(`phase ${phase}`, PHASE_TIMEOUT_MS, async () => (await exists(mark)) || null);
    await crashing.kill();
    await posted;
  } catch (err) {
    await crashing.kill();
    throw err;
  }

  const server = await startChild(dataDir, args, { entry: ENTRY });
  try {
    const listed: Job[] = (await getJson(server, "/v1/jobs")).jobs;
    if (phase === "unpack") {
      assert.deepEqual(listed, [], "an upload killed before it was acknowledged is no job");
      assert.match(server.log(), /removed 1 upload/);
      const model = await getJson(server, "/v1/models/tiny/versions");
      assert.deepEqual(model.versions.map((v: { version: number }) => v.version), [1]);
      await assertNothingHalfWritten(dataDir, []);
      return "no job, nothing published";
    }
    assert.equal(listed.length, 1, "the job acknowledged before the kill is still there");
    const job: Job = await until("the resumed job to end", END_TIMEOUT_MS, async () => {
      const current: Job = await getJson(server, `/v1/jobs/${listed[0].id}`);
      return current.status === "queued" || current.status === "running" ? null : current;
    });
    assert.deepEqual([job.status, job.error, job.attempts], ["succeeded", null, 2], JSON.stringify(job));
    const model = await getJson(server, "/v1/models/tiny/versions");
    const fromJob = model.versions.filter((v: { source: { job_id?: string } }) => v.source.job_id === job.id);
    assert.deepEqual(
      fromJob.map((v: { version: number }) => v.version),
      [job.resultVersion],
      "published once",
    );
    assert.equal(model.versions.length, 2, "the base and the job's result, nothing else");
    assert.deepEqual([job.activated, model.active], [true, job.resultVersion], "activated per `always`");
    const served = await getJson(server, "/v1/models/tiny");
    assert.equal(served.version, job.resultVersion, "serving the result");
    // The job's files go right after its end is recorded.
    await until(
      "the ended job's files to be deleted",
      END_TIMEOUT_MS,
      async () => (await Array.fromAsync(Deno.readDir(join(dataDir, "jobs", job.id)))).length === 1 || null,
    );
    await assertNothingHalfWritten(dataDir, [job]);
    return `succeeded after a restart, v${job.resultVersion} published once and active`;
  } finally {
    await server.stop();
  }
}

Deno.test({
  name:
    "kill -9 during a fine-tune's unpack, training, checkpoint write, publish and activate: consistent restart",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const dir = await Deno.makeTempDir({ prefix: "kestrel-kill9-" });
    try {
      await Deno.writeFile(join(dir, "tiny.onnx"), tinyYolo());
      for (const phase of PHASES) {
        await t.step(phase, async () => console.log(`${phase}: ${await killAt(phase, dir)}`));
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
