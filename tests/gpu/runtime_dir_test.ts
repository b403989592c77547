import assert from "node:assert/strict";
import { ensureRuntimeDir } from "../../src/gpu/runtime_dir.ts";

/** Runs `fn` with XDG_RUNTIME_DIR set to `value` (or unset), restoring the process's value afterwards. */
function withRuntimeDir(value: string | undefined, fn: () => void): void {
  const saved = Deno.env.get("XDG_RUNTIME_DIR");
  try {
    if (value === undefined) Deno.env.delete("XDG_RUNTIME_DIR");
    else Deno.env.set("XDG_RUNTIME_DIR", value);
    fn();
  } finally {
    if (saved === undefined) Deno.env.delete("XDG_RUNTIME_DIR");
    else Deno.env.set("XDG_RUNTIME_DIR", saved);
  }
}

Deno.test("ensureRuntimeDir replaces an unset or non-directory XDG_RUNTIME_DIR and keeps a valid one", () => {
  const temp = Deno.env.get("TMPDIR") || "/tmp";
  withRuntimeDir(undefined, () => {
    ensureRuntimeDir();
    assert.equal(Deno.env.get("XDG_RUNTIME_DIR"), temp);
  });
  // What a Deno task's shell hands over for `XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-/tmp}`.
  withRuntimeDir("${XDG_RUNTIME_DIR:-/tmp}", () => {
    ensureRuntimeDir();
    assert.equal(Deno.env.get("XDG_RUNTIME_DIR"), temp);
  });
  const own = Deno.makeTempDirSync({ prefix: "kestrel-xdg-" });
  try {
    withRuntimeDir(own, () => {
      ensureRuntimeDir();
      assert.equal(Deno.env.get("XDG_RUNTIME_DIR"), own);
    });
  } finally {
    Deno.removeSync(own);
  }
});
