// An in-process app with a tiny model served as "tiny" (version 1, active), an in-memory registry and a job
// service with the test trainer: what the security, limits and fuzz tests send their requests to.
import assert from "node:assert/strict";
import { type AppDeps, createApp } from "../../src/api/app.ts";
import { JobService } from "../../src/jobs/service.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import type { Store } from "../../src/registry/store.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";
import { tinyYolo } from "../onnx/_tiny_yolo.ts";

/** tinyYolo's default class count. */
export const NC = 2;
export const MAX_MODEL_BYTES = 64 * 1024; // tiny models are ~5 KB
export const MAX_DATASET_BYTES = 256 * 1024;
export const LOOPBACK = { remoteAddr: { transport: "tcp", hostname: "127.0.0.1", port: 40000 } };
export const REMOTE = { remoteAddr: { transport: "tcp", hostname: "198.51.100.7", port: 40000 } };

export type TestApp = Awaited<ReturnType<typeof openTestApp>>;

export async function openTestApp(deps: Partial<AppDeps> = {}, store: Store = new MemoryStore()) {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-api-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(store, { maxBytes: MAX_MODEL_BYTES });
  registry.setActivator(async (meta, bytes) => {
    await pool.swap(meta.name, meta.version, bytes);
  });
  await registry.add("tiny", tinyYolo({ nc: NC }), { source: { type: "upload" }, activate: true });
  const trainer = new TestTrainer();
  const jobs = await JobService.open({ dataDir, trainer, log: () => {} });
  const shutdown = new AbortController();
  const app = createApp({
    pool,
    registry,
    jobs,
    maxDatasetBytes: MAX_DATASET_BYTES,
    shutdown: shutdown.signal,
    ...deps,
  });
  const call = (path: string, init: RequestInit = {}, env: object = LOOPBACK) => app.request(path, init, env);
  return {
    app,
    pool,
    registry,
    jobs,
    trainer,
    dataDir,
    call,
    async close() {
      shutdown.abort();
      await jobs.close();
      await pool.close();
      await Deno.remove(dataDir, { recursive: true });
    },
  };
}

/** Asserts an error answer: `status`, and the `{"error": {"code", "message"}}` shape with `code`. */
export async function expectError(
  res: Response | Promise<Response>,
  status: number,
  code: string,
): Promise<{ code: string; message: string }> {
  const r = await res;
  const body = await r.json();
  assert.equal(r.status, status, JSON.stringify(body));
  assert.equal(body.error.code, code, JSON.stringify(body));
  assert.equal(typeof body.error.message, "string");
  return body.error;
}
