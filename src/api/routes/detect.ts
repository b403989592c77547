import { createRoute, z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DEFAULT_DETECT_OPTIONS, type DetectOptions } from "../../serving/postprocess.ts";
import type { RouteModule } from "../app.ts";
import { requireDetectKey } from "../detect_key.ts";
import { captureSource } from "../capture_source.ts";
import { detectOnModel } from "../detect_run.ts";
import { ApiError } from "../errors.ts";
import { limitBody } from "../middleware/body_limit.ts";
import { limitInflight } from "../middleware/inflight.ts";
import { acceptMediaTypes, mediaType } from "../middleware/media_type.ts";
import { error } from "../openapi_responses.ts";
import {
  Base64ImageSchema,
  DetectQuerySchema,
  DetectResultSchema,
  ModelNameParamSchema,
} from "../schemas.ts";

const RAW_TYPES = ["image/jpeg", "image/png", "image/webp", "application/octet-stream"];
const BODY_TYPES = [...RAW_TYPES, "multipart/form-data", "application/json"];
const binary = { schema: z.string().openapi({ format: "binary" }) };

const route = createRoute({
  method: "post",
  path: "/v1/models/{name}/detect",
  summary: "Detect objects in one image (raw body, multipart field `image`, or JSON base64)",
  request: {
    params: ModelNameParamSchema,
    query: DetectQuerySchema,
    body: {
      // Not `required`: zod-openapi then validates JSON and multipart bodies only when they are what was sent.
      required: false,
      content: {
        ...Object.fromEntries(RAW_TYPES.map((t) => [t, binary])),
        "multipart/form-data": {
          schema: z.object({ image: z.instanceof(File).openapi({ type: "string", format: "binary" }) }),
        },
        "application/json": { schema: Base64ImageSchema },
      },
    },
  },
  responses: {
    200: { description: "Detections", content: { "application/json": { schema: DetectResultSchema } } },
    400: error("Bad query values or malformed JSON"),
    404: error("Unknown model"),
    413: error("Body over the size limit, or image over the pixel limit"),
    401: error("With --detect-needs-key: no or a wrong Bearer key"),
    415: error("Not a JPEG, PNG or WebP, or an unsupported content type"),
    422: error("Undecodable image, truncated file, or invalid base64/body fields"),
    429: error("More detect requests in flight than --max-inflight-detect (`overloaded`); see Retry-After"),
    503: error("Models still loading"),
  },
});

/** The image bytes, whichever of the three body forms the client used (the type was checked on arrival). */
async function imageBytes(c: Context): Promise<{ bytes: Uint8Array; file?: string }> {
  const type = mediaType(c);
  if (type === "multipart/form-data") {
    const { image } = (c.req.valid as (t: "form") => { image: File })("form");
    return { bytes: new Uint8Array(await image.arrayBuffer()), file: image.name || undefined };
  }
  if (type === "application/json") {
    const { image } = (c.req.valid as (t: "json") => { image: string })("json");
    const base64 = image.replace(/^data:[^,]*;base64,/, "");
    try {
      return { bytes: Uint8Array.fromBase64(base64.replace(/\s+/g, "")) };
    } catch {
      throw new ApiError(422, "invalid_base64", "Field 'image' is not valid base64");
    }
  }
  return { bytes: new Uint8Array(await c.req.arrayBuffer()) };
}

export const detectRoutes: RouteModule = (app, ctx) => {
  app.on("POST", "/v1/models/:name/detect", limitInflight(ctx.detectInflight), acceptMediaTypes(BODY_TYPES));
  app.use("/v1/models/:name/detect", requireDetectKey(ctx));
  app.use("/v1/models/:name/detect", limitBody(ctx.maxBodyBytes));
  app.openapi(route, async (c) => {
    const { name } = c.req.valid("param");
    const query = c.req.valid("query");
    const opts: DetectOptions = {
      conf: query.conf ?? DEFAULT_DETECT_OPTIONS.conf,
      iou: query.iou ?? DEFAULT_DETECT_OPTIONS.iou,
      maxDet: query.max_det ?? DEFAULT_DETECT_OPTIONS.maxDet,
      classes: query.classes?.split(",").map(Number),
    };
    let file: string | undefined;
    const result = await detectOnModel(ctx, name, opts, async () => {
      const body = await imageBytes(c);
      file = body.file;
      return body.bytes;
    }, captureSource(c, "native"));
    return c.json({ ...(file ? { file } : {}), ...result }, 200);
  });
};
