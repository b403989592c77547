import assert from "node:assert/strict";
import { hostName, isAllowedHost } from "../../../src/api/middleware/host.ts";
import { isSameOrigin } from "../../../src/api/middleware/same_origin.ts";

const allowed = (host: string, listenHost: string, allowedHosts: string[] = []) => {
  const name = hostName(host);
  return name !== null && isAllowedHost(name, { listenHost, allowedHosts });
};

Deno.test("hostName() takes host[:port] only, lower case, IPv6 without brackets", () => {
  assert.equal(hostName("Kestrel.LAN:8000"), "kestrel.lan");
  assert.equal(hostName("[::1]:8000"), "::1");
  assert.equal(hostName("localhost:80"), "localhost");
  for (const junk of ["a/b", "user@evil.example", "", "a b", "evil.example:99999"]) {
    assert.equal(hostName(junk), null, junk);
  }
});

Deno.test("isAllowedHost(): loopback listen answers loopback names; a wildcard listen answers IP literals", () => {
  for (const host of ["127.0.0.1:8000", "localhost:8000", "[::1]:8000"]) {
    assert.ok(allowed(host, "127.0.0.1"), host);
  }
  assert.ok(!allowed("192.168.1.5:8000", "127.0.0.1"));
  assert.ok(!allowed("evil.example:8000", "127.0.0.1"));
  // On every interface, an IP literal cannot be rebound but a name can.
  for (const host of ["192.168.1.5:8000", "[fe80::1]:8000", "localhost"]) {
    assert.ok(allowed(host, "0.0.0.0"), host);
  }
  assert.ok(!allowed("kestrel.lan:8000", "0.0.0.0"));
  assert.ok(allowed("kestrel.lan:8000", "0.0.0.0", ["kestrel.lan"]));
  assert.ok(allowed("kestrel.lan", "kestrel.lan"), "the name it listens on");
  assert.ok(!allowed("localhost", "192.168.1.5"), "a LAN listen address does not answer loopback names");
  assert.ok(allowed("anything.example", "192.168.1.5", ["*"]));
});

Deno.test("isSameOrigin() compares host and port, with the scheme's default port, and refuses null", () => {
  assert.ok(isSameOrigin("http://127.0.0.1:8000", "127.0.0.1:8000"));
  assert.ok(isSameOrigin("https://kestrel.example", "kestrel.example"), "TLS proxy in front keeps the Host");
  assert.ok(isSameOrigin("http://kestrel.example:80", "kestrel.example"));
  assert.ok(!isSameOrigin("http://127.0.0.1:3000", "127.0.0.1:8000"));
  assert.ok(!isSameOrigin("https://evil.example", "127.0.0.1:8000"));
  assert.ok(!isSameOrigin("null", "127.0.0.1:8000"));
  assert.ok(!isSameOrigin("not a url", "127.0.0.1:8000"));
});
