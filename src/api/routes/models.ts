import { createRoute, z } from "@hono/zod-openapi";
import { VersionMetaSchema } from "../../registry/store.ts";
import type { LoadedModel } from "../../serving/loaded_model.ts";
import type { RouteModule } from "../app.ts";
import { ApiError } from "../errors.ts";
import { error, json } from "../openapi_responses.ts";
import { ModelListSchema, ModelNameParamSchema, ModelSchema } from "../schemas.ts";
import { publicMeta } from "./versions.ts";

const list = createRoute({
  method: "get",
  path: "/v1/models",
  summary: "Served models, their active versions and the inference backend",
  responses: { 200: json(ModelListSchema, "Models") },
});

const one = createRoute({
  method: "get",
  path: "/v1/models/{name}",
  summary: "One served model",
  request: { params: ModelNameParamSchema },
  responses: {
    200: json(
      ModelSchema.extend({ versions: z.array(VersionMetaSchema) }),
      "The model, with its registry versions and their meta",
    ),
    404: error("Unknown model"),
  },
});

export function describeModel(m: LoadedModel): z.infer<typeof ModelSchema> {
  const { name, version } = m.ref;
  const { imgsz, stride, nc, names } = m.spec;
  return { name, version, backend: m.backend, imgsz, stride, nc, names };
}

export function unknownModel(name: string): ApiError {
  return new ApiError(404, "model_not_found", `No model named '${name}' is served`);
}

export const modelRoutes: RouteModule = (app, ctx) => {
  app.openapi(
    list,
    (c) =>
      c.json({
        backend: ctx.pool.backend.name,
        backend_reason: ctx.backendReason,
        models: ctx.pool.list().map(describeModel),
      }, 200),
  );
  app.openapi(one, (c) => {
    const { name } = c.req.valid("param");
    const model = ctx.pool.get(name);
    if (!model) throw unknownModel(name);
    const versions = (ctx.registry?.models().find((m) => m.name === name)?.versions ?? []).map(publicMeta);
    return c.json({ ...describeModel(model), versions }, 200);
  });
};
