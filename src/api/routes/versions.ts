/**
 * Model registry routes: upload a version, download one, activate (swap or roll back), delete, and list a
 * model's versions with their meta. Mutations pass the auth guard first, then (upload) the body size limit.
 */
import { basename } from "node:path";
import { createRoute, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import type { Fleet } from "../../fleet/fleet.ts";
import type { Registry } from "../../registry/registry.ts";
import { type VersionMeta, VersionMetaSchema } from "../../registry/store.ts";
import type { ApiApp, RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import { requireMutationAuth } from "../middleware/auth.ts";
import { limitBody } from "../middleware/body_limit.ts";
import { acceptMediaTypes } from "../middleware/media_type.ts";
import { BEARER_SECURITY, error, json, MUTATION_AUTH_ERRORS } from "../openapi_responses.ts";
import { ModelNameParamSchema, named } from "../schemas.ts";

/**
 * A version's meta as clients see it: a startup version's source names the `--model` file, not its absolute
 * path (which tells a client the server's directory layout and user name).
 */
export function publicMeta(meta: VersionMeta): VersionMeta {
  if (meta.source.type !== "startup") return meta;
  return { ...meta, source: { type: "startup", path: basename(meta.source.path) } };
}

const VersionMetaResponse = named(VersionMetaSchema, "VersionMeta");
const VersionListSchema = z.object({
  name: z.string(),
  active: z.number().int().nullable(),
  versions: z.array(VersionMetaResponse),
}).openapi("VersionList");
const VersionParamsSchema = ModelNameParamSchema.extend({
  version: z.coerce.number().int().positive().openapi({ param: { name: "version", in: "path" }, example: 2 }),
});
const FileParamsSchema = ModelNameParamSchema.extend({
  file: z.string().regex(/^\d+\.onnx$/, "<version>.onnx").openapi({
    param: { name: "file", in: "path" },
    example: "2.onnx",
  }),
});

const listRoute = createRoute({
  method: "get",
  path: "/v1/models/{name}/versions",
  summary: "A model's versions with their meta, and which one is active",
  request: { params: ModelNameParamSchema },
  responses: { 200: json(VersionListSchema, "Versions, oldest first"), 404: error("Unknown model") },
});

const downloadRoute = createRoute({
  method: "get",
  path: "/v1/models/{name}/versions/{file}",
  summary: "Download a version's ONNX file (`<version>.onnx`)",
  request: { params: FileParamsSchema },
  responses: {
    200: {
      description: "The ONNX file",
      content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
    },
    404: error("Unknown model or version"),
  },
});

export const versionRoutes: RouteModule = (app, ctx) => {
  const registry: Registry | null = ctx.registry;
  if (!registry) return;
  const guard = requireMutationAuth({ apiKey: ctx.apiKey });
  readRoutes(app, registry);
  uploadRoute(app, registry, guard);
  activateRoute(app, registry, guard, ctx.fleet);
  deleteRoute(app, registry, guard);
};

/** List a model's versions and download one: open to every client, like the models they serve. */
function readRoutes(app: ApiApp, registry: Registry): void {
  app.openapi(listRoute, (c) => {
    const { name } = c.req.valid("param");
    const m = registry.model(name);
    return c.json({ name: m.name, active: m.active, versions: m.versions.map(publicMeta) }, 200);
  });

  app.openapi(downloadRoute, async (c) => {
    const { name, file } = c.req.valid("param");
    const version = parseInt(file, 10);
    // Streamed, with the sha256 recorded at write time: a download holds a chunk of memory and hashes nothing.
    const { meta, body } = await registry.stream(name, version);
    return c.body(body, 200, {
      "content-type": "application/octet-stream",
      "content-disposition": `attachment; filename="${name}-v${version}.onnx"`,
      "x-model-sha256": meta.sha256,
    });
  });
}

function uploadRoute(app: ApiApp, registry: Registry, guard: MiddlewareHandler): void {
  const limit = limitBody(registry.maxBytes, {
    code: "too_large",
    message: `Model upload is over the limit of ${registry.maxBytes} bytes`,
  });
  const route = createRoute({
    method: "post",
    path: "/v1/models/{name}",
    summary: "Upload an ONNX YOLOv5 export as the model's next version",
    middleware: [guard, acceptMediaTypes(["application/octet-stream"], { orNone: true }), limit] as const,
    security: BEARER_SECURITY,
    request: {
      params: ModelNameParamSchema,
      query: z.object({
        activate: z.enum(["true", "false"]).optional().openapi({
          description: "Serve it at once (default false)",
        }),
      }),
      body: {
        required: true,
        content: { "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) } },
      },
    },
    responses: {
      201: json(VersionMetaResponse.extend({ active: z.boolean() }), "The stored version"),
      400: error("Bad model name"),
      ...MUTATION_AUTH_ERRORS,
      413: error("Upload over the size limit"),
      415: error("Content-Type other than application/octet-stream (none is taken as octet-stream)"),
      422: error("Not an ONNX file, or not a YOLOv5 detector, or it failed to load"),
    },
  });
  app.openapi(route, async (c) => {
    const { name } = c.req.valid("param");
    const activate = c.req.valid("query").activate === "true";
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    const meta = await registry.add(name, bytes, { source: { type: "upload" }, activate });
    return c.json({ ...publicMeta(meta), active: activate }, 201);
  });
}

function activateRoute(app: ApiApp, registry: Registry, guard: MiddlewareHandler, fleet: Fleet | null): void {
  const route = createRoute({
    method: "post",
    path: "/v1/models/{name}/activate",
    summary: "Serve another version (swap or roll back) without dropping requests",
    middleware: [guard, acceptMediaTypes(["application/json"])] as const,
    security: BEARER_SECURITY,
    request: {
      params: ModelNameParamSchema,
      body: {
        required: true,
        content: {
          "application/json": {
            schema: z.object({
              version: z.number().int().positive(),
              nodes: z.array(z.string().min(1)).min(1).optional().openapi({
                description:
                  "Fleet (--nats) only: a canary, served by these nodes only until the next activation",
              }),
            }),
          },
        },
      },
    },
    responses: {
      200: json(VersionMetaResponse, "Now active"),
      ...MUTATION_AUTH_ERRORS,
      400: error("`nodes` without a fleet"),
      404: error("Unknown model or version"),
      409: error("In a fleet: the active version or canary was changed on another node meanwhile"),
      415: error("Content-Type other than application/json"),
      422: error("The version failed to load; the previous one keeps serving"),
      503: error("In a fleet: NATS is unreachable; nothing changed"),
    },
  });
  app.openapi(route, async (c) => {
    const { name } = c.req.valid("param");
    const { version, nodes } = c.req.valid("json");
    if (!fleet && nodes) {
      throw new ApiError(400, "invalid_request", "`nodes` (a canary) needs a fleet: --nats");
    }
    const activated = fleet ? fleet.activate(name, version, nodes ?? null) : registry.activate(name, version);
    return c.json(publicMeta(await activated), 200);
  });
}

function deleteRoute(app: ApiApp, registry: Registry, guard: MiddlewareHandler): void {
  const route = createRoute({
    method: "delete",
    path: "/v1/models/{name}/versions/{version}",
    summary: "Delete a version that is not active",
    middleware: [guard] as const,
    security: BEARER_SECURITY,
    request: { params: VersionParamsSchema },
    responses: {
      204: { description: "Deleted" },
      ...MUTATION_AUTH_ERRORS,
      404: error("Unknown model or version"),
      409: error("The version is active"),
    },
  });
  app.openapi(route, async (c) => {
    const { name, version } = c.req.valid("param");
    await registry.remove(name, version);
    return c.body(null, 204);
  });
}
