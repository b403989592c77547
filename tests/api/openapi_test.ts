import assert from "node:assert/strict";
import { Validator } from "@seriousme/openapi-schema-validator";
import { createApp } from "../../src/api/app.ts";
import { CaptureService } from "../../src/capture/service.ts";
import { DOCS_PATH, OPENAPI_PATH } from "../../src/api/routes/docs.ts";
import { UI_PREFIX } from "../../src/api/routes/ui.ts";
import { JobService } from "../../src/jobs/service.ts";
import { MemoryStore } from "../../src/registry/memory_store.ts";
import { Registry } from "../../src/registry/registry.ts";
import { nativeBackend } from "../../src/serving/backends/native.ts";
import { ModelPool } from "../../src/serving/pool.ts";
import { TestTrainer } from "../jobs/_test_trainer.ts";

const MAX_MODEL_BYTES = 1 << 20; // no model is uploaded here; the registry only needs a limit
// Pages and files for people, not API operations: they stay out of the document.
const NOT_API = ["/", `${UI_PREFIX}*`, OPENAPI_PATH, DOCS_PATH, `${DOCS_PATH}/:file`];
const BODY_METHODS = new Set(["post", "put", "patch"]);

interface Operation {
  parameters?: { name: string; in: string; schema?: object }[];
  requestBody?: { content: Record<string, { schema?: object }> };
  responses: Record<string, { content?: Record<string, { schema?: object }> }>;
}

/** The app with every optional part mounted, so the document covers every route there is. */
async function fullApp() {
  const dataDir = await Deno.makeTempDir({ prefix: "kestrel-openapi-" });
  const pool = new ModelPool(nativeBackend);
  const registry = await Registry.open(new MemoryStore(), { maxBytes: MAX_MODEL_BYTES });
  const jobs = await JobService.open({ dataDir, trainer: new TestTrainer(), log: () => {} });
  const capture = await CaptureService.open(dataDir, () => {});
  const close = async () => {
    await jobs.close();
    await pool.close();
    await Deno.remove(dataDir, { recursive: true });
  };
  return { app: createApp({ pool, registry, jobs, capture }), close };
}

Deno.test("/openapi.json is valid OpenAPI 3.1 and lists every API route with its schemas", async () => {
  const { app, close } = await fullApp();
  try {
    const res = await app.request(OPENAPI_PATH);
    assert.equal(res.status, 200);
    const doc = await res.json();
    assert.match(doc.openapi, /^3\.1\.\d+$/);
    assert.deepEqual(await new Validator().validate(doc), { valid: true });

    // Hono keeps one entry per handler and middleware (method ALL); the document has one per operation.
    const routes = new Set(
      app.routes.filter((r) => r.method !== "ALL" && !NOT_API.includes(r.path))
        .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)/g, "{$1}")}`),
    );
    const paths = doc.paths as Record<string, Record<string, Operation>>;
    const documented = new Set(
      Object.entries(paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m} ${p}`)),
    );
    assert.deepEqual([...routes].sort(), [...documented].sort());
    const required = [
      "get /healthz",
      "get /readyz",
      "get /metrics",
      "get /v1/models",
      "post /v1/models/{name}/detect",
      "post /v1/models/{name}/activate",
      "post /v1/models/{name}/finetune",
      "get /v1/jobs/{id}/events",
      "delete /v1/jobs/{id}",
      "put /v1/models/{name}/capture",
      "put /v1/captures/{id}/labels",
      "get /v1/captures/export",
      "put /v1/models/{name}/regression-set",
    ];
    for (const route of required) assert.ok(documented.has(route), `${route} is documented`);

    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const where = `${method.toUpperCase()} ${path}`;
        for (const name of path.matchAll(/\{(\w+)\}/g)) {
          const param = op.parameters?.find((p) => p.name === name[1] && p.in === "path");
          assert.ok(param?.schema, `${where}: path parameter ${name[1]} has a schema`);
        }
        if (BODY_METHODS.has(method)) {
          assert.ok(op.requestBody, `${where} documents its request body`);
          for (const [type, media] of Object.entries(op.requestBody.content)) {
            assert.ok(media.schema, `${where}: request body ${type} has a schema`);
          }
        }
        const success = Object.entries(op.responses).filter(([status]) => status.startsWith("2"));
        assert.ok(success.length > 0, `${where} documents a success response`);
        for (const [status, response] of Object.entries(op.responses)) {
          for (const [type, media] of Object.entries(response.content ?? {})) {
            assert.ok(media.schema, `${where}: response ${status} ${type} has a schema`);
          }
        }
        const errors = Object.entries(op.responses).filter(([status]) => /^[45]/.test(status));
        for (const [status, response] of errors) {
          assert.ok(response.content?.["application/json"], `${where}: error ${status} is JSON`);
        }
      }
    }
  } finally {
    await close();
  }
});

Deno.test("the API's modules load after the layers whose schemas they name, in one process", async () => {
  // Before `named`, loading a layer's zod schemas before @hono/zod-openapi failed at `.openapi` (the fleet tests
  // met it): the layers go first here, then the whole app.
  const src = new URL("../../src/", import.meta.url);
  const layers = ["jobs/types.ts", "fleet/job_state.ts", "fleet/presence.ts", "registry/store.ts"]
    .concat(["capture/policy.ts", "capture/regression_set.ts"]);
  const code = layers.map((m) => `await import(${JSON.stringify(new URL(m, src).href)});`).join("\n") +
    `\nawait import(${JSON.stringify(new URL("api/app.ts", src).href)});`;
  const run = await new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
});
