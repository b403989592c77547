import assert from "node:assert/strict";
import { Hono } from "hono";
import { isLoopback, requireMutationAuth, resolveApiKey } from "../../../src/api/middleware/auth.ts";

function app(apiKey: string | null) {
  const hono = new Hono();
  hono.post("/mutate", requireMutationAuth({ apiKey }), (c) => c.json({ ok: true }));
  return hono;
}

const from = (hostname: string) => ({ remoteAddr: { transport: "tcp", hostname, port: 5555 } });

Deno.test("requireMutationAuth() with a key accepts only the right Bearer key, from anywhere", async () => {
  const a = app("s3cret");
  const ok = await a.request(
    "/mutate",
    { method: "POST", headers: { authorization: "Bearer s3cret" } },
    from("203.0.113.9"),
  );
  assert.equal(ok.status, 200);
  for (const header of [undefined, "Bearer s3cre", "Bearer s3cret2", "Basic s3cret", "bearer s3cret"]) {
    const res = await a.request(
      "/mutate",
      { method: "POST", headers: header ? { authorization: header } : {} },
      from("127.0.0.1"),
    );
    assert.equal(res.status, 401, `header ${header}`);
    assert.equal((await res.json()).error.code, "unauthorized");
    assert.match(res.headers.get("www-authenticate") ?? "", /^Bearer/);
  }
});

Deno.test("requireMutationAuth() without a key lets loopback clients through and answers 403 to others", async () => {
  const a = app(null);
  for (const host of ["127.0.0.1", "::1", "::ffff:127.0.0.1"]) {
    assert.equal((await a.request("/mutate", { method: "POST" }, from(host))).status, 200, host);
  }
  for (const env of [from("192.168.1.20"), from("::ffff:10.0.0.1"), undefined]) {
    const res = await a.request("/mutate", { method: "POST" }, env);
    assert.equal(res.status, 403);
    assert.equal((await res.json()).error.code, "forbidden");
  }
});

Deno.test("requireMutationAuth() without a key refuses loopback requests that came through a proxy", async () => {
  const a = app(null);
  for (const header of ["forwarded", "x-forwarded-for", "x-real-ip"]) {
    const res = await a.request(
      "/mutate",
      { method: "POST", headers: { [header]: "for=203.0.113.9" } },
      from("127.0.0.1"),
    );
    assert.equal(res.status, 403, header);
    const { error } = await res.json();
    assert.equal(error.code, "forbidden");
    assert.match(error.message, /proxy.*--api-key-file/);
  }
  const keyed = await app("s3cret").request("/mutate", {
    method: "POST",
    headers: { "x-forwarded-for": "203.0.113.9", authorization: "Bearer s3cret" },
  }, from("127.0.0.1"));
  assert.equal(keyed.status, 200, "with a key, proxied clients are fine");
});

Deno.test("isLoopback() covers 127.0.0.0/8 and ::1 only", () => {
  assert.ok(isLoopback("127.8.9.10"));
  assert.ok(!isLoopback("128.0.0.1"));
  assert.ok(!isLoopback("::2"));
  assert.ok(!isLoopback(undefined));
});

Deno.test("resolveApiKey() prefers the flag, then KESTREL_API_KEY", () => {
  const saved = Deno.env.get("KESTREL_API_KEY");
  try {
    Deno.env.set("KESTREL_API_KEY", "from-env");
    assert.equal(resolveApiKey("from-flag"), "from-flag");
    assert.equal(resolveApiKey(undefined), "from-env");
    Deno.env.delete("KESTREL_API_KEY");
    assert.equal(resolveApiKey(undefined), null);
    assert.equal(resolveApiKey(""), null);
  } finally {
    if (saved !== undefined) Deno.env.set("KESTREL_API_KEY", saved);
  }
});
