import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

Deno.test("deno task bundle refuses an unknown target with exit 2, naming the targets, before fetching anything", async () => {
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "main.ts",
      "bundle",
      "--target",
      "riscv64-unknown-linux-gnu",
      "--out",
      "/nonexistent",
    ],
    cwd: ROOT,
    stdout: "null",
    stderr: "piped",
    signal: AbortSignal.timeout(30_000),
  }).output();
  assert.equal(code, 2);
  const message = new TextDecoder().decode(stderr);
  assert.match(message, /x86_64-unknown-linux-gnu\|aarch64-unknown-linux-gnu/);
});
