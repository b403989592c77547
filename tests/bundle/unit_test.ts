import assert from "node:assert/strict";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
const HAS_ANALYZE = await new Deno.Command("sh", {
  args: ["-c", "command -v systemd-analyze"],
  stdout: "null",
})
  .output().then((o) => o.success, () => false);
if (!HAS_ANALYZE) console.warn("unit test skipped: systemd-analyze is not installed");
const UNIT = await Deno.readTextFile(join(ROOT, "deploy/kestrel.service"));

/** The unit's settings as key -> values (a key may repeat). */
function settings(unit: string): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const line of unit.split("\n")) {
    const m = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (m) map.set(m[1], [...map.get(m[1]) ?? [], m[2]]);
  }
  return map;
}

Deno.test({
  name:
    "kestrel.service passes systemd-analyze verify with no warning (its commands present, as after install)",
  ignore: !HAS_ANALYZE,
  fn: async () => {
    // verify checks that ExecStart's program exists: point the unit at a stand-in launcher.
    const work = await Deno.makeTempDir({ prefix: "kestrel-unit-" });
    await Deno.mkdir(join(work, "bin"));
    await Deno.writeTextFile(join(work, "bin/kestrel"), "#!/bin/sh\n");
    await Deno.chmod(join(work, "bin/kestrel"), 0o755);
    await Deno.writeTextFile(join(work, "kestrel.service"), UNIT.replaceAll("/opt/kestrel/current", work));
    const { code, stdout, stderr } = await new Deno.Command("systemd-analyze", {
      args: ["verify", "--man=no", join(work, "kestrel.service")],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(30_000),
    }).output();
    const out = (new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr)).trim();
    assert.equal(code, 0, out);
    // verify exits 0 on settings it ignores (a typo, an unknown value), so any output is a failure too.
    assert.equal(out, "");
    await Deno.remove(work, { recursive: true });
  },
});

Deno.test("kestrel.service: restarts on failure, waits longer than the drain, sandboxed, GPU render nodes only", () => {
  const s = settings(UNIT);
  assert.deepEqual(s.get("Restart"), ["on-failure"]);
  assert.deepEqual(s.get("ExecStartPost"), ["/opt/kestrel/current/bin/kestrel wait-ready"]);
  // The server drains requests for up to 10 s on SIGTERM (issue 15); systemd must not SIGKILL it before.
  assert.ok(Number(s.get("TimeoutStopSec")![0]) > 10);
  for (
    const [key, value] of [
      ["ProtectSystem", "strict"],
      ["ReadWritePaths", "/var/lib/kestrel"],
      ["NoNewPrivileges", "yes"],
      ["PrivateTmp", "yes"],
      ["ProtectHome", "yes"],
      ["DevicePolicy", "closed"],
      ["DeviceAllow", "char-drm rw"],
      ["EnvironmentFile", "/etc/kestrel/kestrel.env"],
    ]
  ) {
    assert.deepEqual(s.get(key), [value], key);
  }
});
