/**
 * `GET /v1/server`: how the server guards writes and what it limits, so the dashboard can say plainly when it
 * runs without an API key (any loopback client, a same-host proxy's clients included, may change models), and
 * which decoder its JPEGs get (an operator checking that the fast path is installed).
 */
import { createRoute, z } from "@hono/zod-openapi";
import { defaultImageDecoder } from "../../image/decode.ts";
import type { RouteModule } from "../app.ts";
import { json } from "../openapi_responses.ts";

const ServerInfoSchema = z.object({
  auth: z.enum(["api_key", "loopback_only"]).openapi({
    description: "`api_key`: writes need `Authorization: Bearer <key>`. `loopback_only`: no key is set and " +
      "any client on this machine may write; behind a proxy that means every client (start with --api-key-file)",
  }),
  limits: z.object({
    max_body_bytes: z.number().int(),
    max_pixels: z.number().int(),
    max_dataset_bytes: z.number().int(),
    max_inflight_detect: z.number().int(),
    max_event_streams: z.number().int(),
  }),
  jpeg_decoder: z.string().openapi({
    description: "`turbojpeg (library)`: libjpeg-turbo's TurboJPEG decodes uploaded JPEGs. `sharp (why)`: " +
      "libturbojpeg did not load (install Debian's `libturbojpeg0`) and sharp decodes them, the same pixels slower",
  }),
}).openapi("ServerInfo");

const route = createRoute({
  method: "get",
  path: "/v1/server",
  summary: "How writes are authorised (API key or loopback only) and the request limits",
  responses: {
    200: json(ServerInfoSchema, "Server settings"),
  },
});

export const serverInfoRoutes: RouteModule = (app, ctx) => {
  app.openapi(route, (c) =>
    c.json({
      auth: ctx.apiKey ? "api_key" as const : "loopback_only" as const,
      limits: {
        max_body_bytes: ctx.maxBodyBytes,
        max_pixels: ctx.maxPixels,
        max_dataset_bytes: ctx.maxDatasetBytes,
        max_inflight_detect: ctx.maxInflightDetect,
        max_event_streams: ctx.maxEventStreams,
      },
      jpeg_decoder: defaultImageDecoder().jpegDecoder,
    }, 200));
};
