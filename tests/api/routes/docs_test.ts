import assert from "node:assert/strict";
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { Validator } from "@seriousme/openapi-schema-validator";
import { DOCS_PATH, OPENAPI_PATH, registerDocs } from "../../../src/api/routes/docs.ts";

function tinyApp(): OpenAPIHono {
  const app = new OpenAPIHono();
  const Echo = z.object({ text: z.string().min(1) });
  app.openapi(
    createRoute({
      method: "post",
      path: "/echo",
      request: { body: { content: { "application/json": { schema: Echo } } } },
      responses: { 200: { description: "The same text", content: { "application/json": { schema: Echo } } } },
    }),
    (c) => c.json(c.req.valid("json"), 200),
  );
  registerDocs(app);
  return app;
}

Deno.test("registerDocs() serves an OpenAPI 3.1 document built from the route schemas", async () => {
  const res = await tinyApp().request(OPENAPI_PATH);
  assert.equal(res.status, 200);
  const doc = await res.json();
  assert.match(doc.openapi, /^3\.1\.\d+$/);
  const result = await new Validator().validate(doc);
  assert.deepEqual(result, { valid: true });
  const body = doc.paths["/echo"].post.requestBody.content["application/json"].schema;
  assert.equal(body.properties.text.type, "string");
  assert.equal(body.properties.text.minLength, 1);
});

Deno.test("registerDocs() serves Swagger UI and its assets from the server itself", async () => {
  const app = tinyApp();
  const page = await app.request(DOCS_PATH);
  assert.equal(page.status, 200);
  const html = await page.text();
  const refs = [...html.matchAll(/(?:href|src)="([^"]+)"/g)].map((m) => m[1]).filter((r) => r !== "data:,");
  assert.ok(refs.length >= 2, `expected the css and bundle in ${refs}`);
  for (const ref of refs) {
    assert.ok(ref.startsWith(`${DOCS_PATH}/`), `${ref} is not served locally`);
    const res = await app.request(ref);
    assert.equal(res.status, 200, ref);
    assert.ok((await res.arrayBuffer()).byteLength > 1000, `${ref} looks empty`);
  }
  assert.match(html, new RegExp(`url: "${OPENAPI_PATH}"`));
  assert.equal((await app.request(`${DOCS_PATH}/index.html`)).status, 404);
});
