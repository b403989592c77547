/** Where a detect request came from, as capture records it: API family, client address, `x-camera-id`. */
import type { Context } from "hono";
import type { CaptureSource } from "../capture/types.ts";

/** Longest `x-camera-id` kept; NVR camera names are short, and the header is stored with every capture. */
export const MAX_CAMERA_ID_LENGTH = 128;

export function captureSource(c: Context, route: CaptureSource["route"]): CaptureSource {
  // Deno.serve passes its ServeHandlerInfo as Hono's env; app.request() without one has no address.
  const client = (c.env as { remoteAddr?: { hostname?: string } } | undefined)?.remoteAddr?.hostname ?? null;
  const camera = c.req.header("x-camera-id")?.trim().slice(0, MAX_CAMERA_ID_LENGTH) || null;
  return { route, client, camera };
}
