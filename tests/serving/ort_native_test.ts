import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** What one process that creates a session leaves in its own $TMPDIR. */
async function tempFilesOfOneSession(loader: "raw" | "kestrel"): Promise<string[]> {
  const tmp = await Deno.makeTempDir({ prefix: "kestrel-ort-tmp-" });
  try {
    // A clean environment: the parent test process may already hold ORT_DISABLE_TELEMETRY from a loader import.
    const env: Record<string, string> = { TMPDIR: tmp };
    for (const key of ["PATH", "HOME", "DENO_DIR"]) {
      const value = Deno.env.get(key);
      if (value !== undefined) env[key] = value;
    }
    const { code, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "tests/serving/_ort_session.ts", loader],
      cwd: ROOT,
      clearEnv: true,
      env,
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(120_000),
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    return [...Deno.readDirSync(tmp)].map((e) => e.name).sort();
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

Deno.test("onnxruntime-node loaded through ort_native.ts leaves no telemetry files in $TMPDIR", async () => {
  // The control shows the probe sees what onnxruntime 1.30 writes on its own (else the second check is empty).
  const raw = await tempFilesOfOneSession("raw");
  assert.ok(raw.some((name) => /^mat-debug-\d+\.log$/.test(name)), `raw onnxruntime-node left ${raw}`);
  assert.deepEqual(await tempFilesOfOneSession("kestrel"), []);
});
