/**
 * API documentation: the OpenAPI 3.1 document generated from the zod schemas the routes validate with, and
 * Swagger UI at `/docs` from the swagger-ui-dist package on disk, so the page loads nothing from elsewhere.
 */
import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Env } from "hono";
import type { RouteModule } from "../app.ts";

export const OPENAPI_PATH = "/openapi.json";
export const DOCS_PATH = "/docs";
const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

export const OPENAPI_INFO = {
  title: "Kestrel",
  version: "1.0.0",
  description: "Object detection over HTTP on YOLOv5 ONNX models, with a model registry and on-device " +
    "fine-tuning. Mutating routes need `Authorization: Bearer <key>` when the server has an API key. Every " +
    "route answers 421 `misdirected_host` to a Host the server does not answer to (see --allowed-hosts), and " +
    "every write 403 `cross_site` when a browser sent it from another site.",
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Kestrel API</title>
  <link rel="icon" href="data:,">
  <link rel="stylesheet" href="${DOCS_PATH}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="${DOCS_PATH}/swagger-ui-bundle.js"></script>
  <script>
    // validatorUrl null: the default badge would call an outside validator service.
    SwaggerUIBundle({ url: "${OPENAPI_PATH}", dom_id: "#swagger-ui", validatorUrl: null, deepLinking: true });
  </script>
</body>
</html>`;

let distDir: Promise<string> | undefined;

// swagger-ui-dist exposes its folder only through its CommonJS entry, which also evaluates the 1.5 MB bundle:
// import it the first time someone opens the docs, not at server start.
function swaggerDir(): Promise<string> {
  distDir ??= import("swagger-ui-dist").then((m) => (m.getAbsoluteFSPath as () => string)());
  return distDir;
}

/** Adds `/openapi.json`, `/docs` and its assets to `app`; the document lists the routes `app` has. */
export function registerDocs<E extends Env>(app: OpenAPIHono<E>): void {
  app.doc31(OPENAPI_PATH, { openapi: "3.1.0", info: OPENAPI_INFO });
  app.get(DOCS_PATH, (c) => c.html(PAGE));
  app.get(`${DOCS_PATH}/:file`, async (c) => {
    const file = c.req.param("file");
    const type = ASSETS[file];
    if (!type) return c.json({ error: { code: "not_found", message: `No docs asset '${file}'` } }, 404);
    const body = await Deno.readFile(`${await swaggerDir()}/${file}`);
    return new Response(body, {
      headers: { "content-type": type, "cache-control": "public, max-age=86400" },
    });
  });
}

export const docsRoutes: RouteModule = (app) => registerDocs(app);
