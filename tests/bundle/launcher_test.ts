import assert from "node:assert/strict";
import { join } from "node:path";
import { writeDeployFiles } from "../../src/bundle/build.ts";
import { parseServerArgs } from "../../src/config/server.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** The launcher is a shell script around one exec: milliseconds. */
const LAUNCH_LIMIT_MS = 10_000;

/** A bundle whose bin/deno prints its arguments one per line, so the launcher's command line can be read. */
async function echoBundle(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-launcher-" });
  await writeDeployFiles(ROOT, dir, "0.0.0");
  await Deno.writeTextFile(join(dir, "bin/deno"), '#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n');
  await Deno.chmod(join(dir, "bin/deno"), 0o755);
  return dir;
}

async function launch(dir: string, env: Record<string, string>, ...args: string[]) {
  const { code, stdout, stderr } = await new Deno.Command(join(dir, "bin/kestrel"), {
    args,
    env: { PATH: "/usr/bin:/bin", HOME: dir, ...env },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(LAUNCH_LIMIT_MS),
  }).output();
  return {
    code,
    argv: new TextDecoder().decode(stdout).split("\n").slice(0, -1),
    err: new TextDecoder().decode(stderr),
  };
}

Deno.test("bin/kestrel serve: the bundled Deno, offline flags, env-file settings as flags, command-line flags last", async () => {
  const dir = await echoBundle();
  const { code, argv } = await launch(
    dir,
    {
      KESTREL_HOST: "0.0.0.0",
      KESTREL_PORT: "8000",
      KESTREL_MODELS: "/m/a.onnx /m/b.onnx",
      KESTREL_MAX_PIXELS: "",
      KESTREL_SERVE_ARGS: "--imgsz 320",
    },
    "serve",
    "--port",
    "9",
  );
  assert.equal(code, 0);
  const app = join(dir, "app");
  const main = argv.indexOf(join(app, "main.ts"));
  assert.deepEqual(argv.slice(0, main), [
    "run",
    "-A",
    "--cached-only",
    "--no-remote",
    "--frozen",
    "--node-modules-dir=manual",
    "--config",
    join(app, "deno.json"),
  ]);
  const serveArgs = argv.slice(main + 2);
  assert.equal(argv[main + 1], "serve");
  // An empty key gives no flag; the server reads what the launcher passes, and the command line wins.
  assert.ok(!serveArgs.includes("--max-pixels"));
  const config = parseServerArgs(serveArgs);
  assert.deepEqual(
    [config.host, config.port, config.models, config.imgsz],
    ["0.0.0.0", 9, ["/m/a.onnx", "/m/b.onnx"], 320],
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bin/kestrel: doctor takes the data dir from the env file, wait-ready polls loopback, unknown commands exit 2", async () => {
  const dir = await echoBundle();
  const doctor = await launch(dir, { KESTREL_DATA_DIR: "/var/lib/kestrel" }, "doctor");
  assert.deepEqual(doctor.argv.slice(-3), ["doctor", "--data-dir", "/var/lib/kestrel"]);
  const ready = await launch(dir, { KESTREL_HOST: "0.0.0.0", KESTREL_PORT: "8123" }, "wait-ready");
  assert.equal(ready.argv[0], "eval");
  assert.deepEqual(ready.argv.slice(-2), ["http://127.0.0.1:8123/readyz", "120"]);
  const unknown = await launch(dir, {}, "frobnicate");
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /^Usage: kestrel serve\|detect/);
  await Deno.remove(dir, { recursive: true });
});
