import assert from "node:assert/strict";
import { Hono } from "hono";
import { registerUi } from "../../../src/api/routes/ui.ts";

const app = new Hono();
registerUi(app);

/** Local URLs an HTML page or ES module pulls in: link/script attributes and static `import ... from`. */
function references(text: string, base: string): string[] {
  const found = [
    ...text.matchAll(/(?:href|src)="([^"#:]+)"/g),
    ...text.matchAll(/(?:import|from)\s+"([^"]+)"/g),
  ];
  return found.map((m) => new URL(m[1], `http://local${base}`).pathname);
}

Deno.test("registerUi() serves the dashboard and every file it loads, transitively", async () => {
  const seen = new Set<string>();
  const queue = ["/"];
  while (queue.length > 0) {
    const path = queue.shift()!;
    if (seen.has(path)) continue;
    seen.add(path);
    const res = await app.request(path);
    assert.equal(res.status, 200, `GET ${path}`);
    const type = res.headers.get("content-type") ?? "";
    const expected = path === "/" ? "text/html" : path.endsWith(".js") ? "text/javascript" : "text/css";
    assert.ok(type.startsWith(expected), `${path} served as '${type}', expected ${expected}`);
    const text = await res.text();
    // Links to other pages (/docs) are not the dashboard's own files.
    if (path === "/" || path.endsWith(".js")) {
      queue.push(...references(text, path).filter((r) => r.startsWith("/ui/")));
    }
  }
  assert.ok(seen.has("/ui/app.css") && seen.has("/ui/js/main.js") && seen.has("/ui/js/chart.js"));
});

Deno.test("registerUi() page loads nothing from another origin", async () => {
  const html = await (await app.request("/")).text();
  const external = [...html.matchAll(/(?:href|src)="((?:https?:)?\/\/[^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(external, []);
});

Deno.test("registerUi() answers 404 JSON for files outside web/ or unknown", async () => {
  for (
    const path of [
      "/ui/js/nope.js",
      "/ui/..%2fdeno.json",
      "/ui/js/..%2f..%2fdeno.json",
      "/ui/.env",
      "/ui/x.ts",
    ]
  ) {
    const res = await app.request(path);
    assert.equal(res.status, 404, path);
    const body = await res.json();
    assert.equal(body.error.code, "not_found", path);
  }
});
