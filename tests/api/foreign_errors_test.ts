import assert from "node:assert/strict";
import { Hono } from "hono";
import { ApiError, handleError } from "../../src/api/errors.ts";
import { reshapeErrors } from "../../src/api/foreign_errors.ts";

/** An app whose routes fail in every way the real one can: thrown ApiError, thrown Error (500), notFound. */
function app() {
  const hono = new Hono();
  hono.use("/family/*", reshapeErrors((status, message, code) => ({ status, message, code })));
  hono.onError(handleError);
  hono.get("/family/teapot", () => {
    throw new ApiError(418, "teapot", "short and stout");
  });
  hono.get("/family/crash", () => {
    throw new Error("secret internals");
  });
  hono.get("/family/text", (c) => c.text("plain failure", 502, { "x-kept": "yes" }));
  hono.get("/family/fine", (c) => c.json({ ok: true }));
  hono.get("/other/teapot", () => {
    throw new ApiError(418, "teapot", "short and stout");
  });
  return hono;
}

Deno.test("reshapeErrors rewrites every error under its prefix, whoever raised it, and leaves the rest", async () => {
  const a = app();
  const body = async (path: string) => {
    const res = await a.request(path);
    assert.match(res.headers.get("content-type") ?? "", /^application\/json/);
    return [res.status, await res.json(), res.headers.get("x-kept")];
  };
  const originalError = console.error;
  console.error = () => {}; // handleError logs the 500's cause
  try {
    assert.deepEqual(await body("/family/teapot"), [418, {
      status: 418,
      message: "short and stout",
      code: "teapot",
    }, null]);
    assert.deepEqual(await body("/family/crash"), [500, {
      status: 500,
      message: "Internal server error",
      code: "internal_error",
    }, null]);
  } finally {
    console.error = originalError;
  }
  assert.deepEqual(await body("/family/text"), [
    502,
    { status: 502, message: "HTTP 502", code: "http_error" },
    "yes",
  ]);
  assert.deepEqual(await body("/family/missing"), [404, {
    status: 404,
    message: "HTTP 404",
    code: "http_error",
  }, null]);
  assert.deepEqual(await body("/family/fine"), [200, { ok: true }, null]);
  assert.deepEqual(await body("/other/teapot"), [418, {
    error: { code: "teapot", message: "short and stout" },
  }, null]);
});
