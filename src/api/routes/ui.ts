/**
 * The operator dashboard: `web/index.html` at `/` and its static files under `/ui/`. Files are read per
 * request (they are small and few) so the page always matches the checkout; only names made of plain path
 * segments with a known extension are served, which keeps `..` and hidden files out.
 */
import type { Env, Hono } from "hono";
import type { RouteModule } from "../app.ts";

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};
const ASSET = /^(?:[a-z0-9_-]+\/)*[a-z0-9_-]+\.(html|js|css|svg)$/;

export const UI_PREFIX = "/ui/";
const WEB_ROOT = new URL("../../../web/", import.meta.url);

async function serveFile(root: URL, path: string, type: string): Promise<Response> {
  try {
    const body = await Deno.readFile(new URL(path, root));
    return new Response(body, { headers: { "content-type": type, "cache-control": "no-cache" } });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
    return Response.json({ error: { code: "not_found", message: `No dashboard file '${path}'` } }, {
      status: 404,
    });
  }
}

/** Adds the dashboard to `app`; `root` is the folder holding index.html (the repo's web/ by default). */
export function registerUi<E extends Env>(app: Hono<E>, root: URL = WEB_ROOT): void {
  app.get("/", () => serveFile(root, "index.html", TYPES.html));
  app.get(`${UI_PREFIX}*`, (c) => {
    const path = c.req.path.slice(UI_PREFIX.length);
    const match = ASSET.exec(path);
    if (!match) {
      return c.json({ error: { code: "not_found", message: `No dashboard file '${path}'` } }, 404);
    }
    return serveFile(root, path, TYPES[match[1]]);
  });
}

export const uiRoutes: RouteModule = (app) => registerUi(app);
