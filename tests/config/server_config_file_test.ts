import assert from "node:assert/strict";
import { join } from "node:path";
import { parseServerArgs, SERVE_OPTIONS } from "../../src/config/server.ts";

async function withConfig(
  toml: string,
  fn: (path: string, dir: string) => void | Promise<void>,
  mode = 0o600,
) {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-config-" });
  try {
    const path = join(dir, "kestrel.toml");
    await Deno.writeTextFile(path, toml);
    await Deno.chmod(path, mode);
    await fn(path, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** One value per serve flag, as a flag and as a TOML value: the file must be able to set everything. */
const EVERY_FLAG: Record<string, { flag: string[]; toml: string }> = {
  host: { flag: ["0.0.0.0"], toml: '"0.0.0.0"' },
  port: { flag: ["9001"], toml: "9001" },
  model: { flag: ["a.onnx", "b.onnx"], toml: '["a.onnx", "b.onnx"]' },
  "data-dir": { flag: ["/var/lib/kestrel"], toml: '"/var/lib/kestrel"' },
  backend: { flag: ["wasm"], toml: '"wasm"' },
  imgsz: { flag: ["320"], toml: "320" },
  "max-body-bytes": { flag: ["1000"], toml: "1000" },
  "max-pixels": { flag: ["2000"], toml: '"2000"' },
  "api-key": { flag: ["s3cret"], toml: '"s3cret"' },
  "max-model-bytes": { flag: ["3000"], toml: "3000" },
  "max-dataset-bytes": { flag: ["4000"], toml: "4000" },
  "allowed-hosts": { flag: ["kestrel.lan,box.example"], toml: '["kestrel.lan", "box.example"]' },
  "max-inflight-detect": { flag: ["5"], toml: "5" },
  "max-queue": { flag: ["4"], toml: "4" },
  "max-event-streams": { flag: ["6"], toml: "6" },
  "max-train-memory": { flag: ["7000"], toml: "7000" },
  "deepstack-model": { flag: ["yolov5n"], toml: '"yolov5n"' },
  "detect-needs-key": { flag: [], toml: "true" },
  "max-concurrent-uploads": { flag: ["3"], toml: "3" },
  "max-queued-jobs": { flag: ["8"], toml: "8" },
  "min-free-bytes": { flag: ["9000"], toml: "9000" },
  "serve-budget-ms": { flag: ["250"], toml: "250" },
  "log-format": { flag: ["json"], toml: '"json"' },
  "drain-seconds": { flag: ["2.5"], toml: "2.5" },
  nats: { flag: ["nats://127.0.0.1:4333"], toml: '"nats://127.0.0.1:4333"' },
  "nats-creds": { flag: ["/etc/kestrel/fleet.creds"], toml: '"/etc/kestrel/fleet.creds"' },
  "nats-ca": { flag: ["/etc/kestrel/ca.pem"], toml: '"/etc/kestrel/ca.pem"' },
  node: { flag: ["box-1"], toml: '"box-1"' },
  fleet: { flag: ["site-a"], toml: '"site-a"' },
  jobs: { flag: ["off"], toml: '"off"' },
};

Deno.test("a config file sets everything the serve flags set, to the same values", async () => {
  // api-key-file sets the same setting as api-key (the two exclude each other): its own test is below.
  const settable = Object.keys(SERVE_OPTIONS).filter((k) => k !== "api-key-file");
  assert.deepEqual(Object.keys(EVERY_FLAG).sort(), settable.sort(), "a flag without a case");
  const toml = Object.entries(EVERY_FLAG).map(([key, v]) => `${key} = ${v.toml}`).join("\n");
  const flags = Object.entries(EVERY_FLAG).flatMap(([key, v]) =>
    v.flag.length === 0 ? [`--${key}`] : v.flag.flatMap((value) => [`--${key}`, value])
  );
  const fromFlags = parseServerArgs(flags);
  const defaults = parseServerArgs([]);
  for (const [key, value] of Object.entries(fromFlags)) {
    assert.notDeepEqual(value, defaults[key as keyof typeof defaults], `${key} is set to its default`);
  }
  await withConfig(`# kestrel.toml\n${toml}\n`, (path) => {
    assert.deepEqual(parseServerArgs(["--config", path]), fromFlags);
  });
});

Deno.test("flags override the config file, a list flag replaces the file's list", async () => {
  const toml = 'port = 9001\nhost = "0.0.0.0"\nmodel = ["a.onnx", "b.onnx"]\nlog-format = "json"\n' +
    'detect-needs-key = true\napi-key = "from-file"\n';
  await withConfig(toml, (path) => {
    const fileOnly = parseServerArgs(["--config", path]);
    assert.deepEqual(
      [
        fileOnly.port,
        fileOnly.host,
        fileOnly.models,
        fileOnly.logFormat,
        fileOnly.apiKey,
        fileOnly.drainSeconds,
      ],
      [9001, "0.0.0.0", ["a.onnx", "b.onnx"], "json", "from-file", 10],
    );
    // Flags before or after --config win alike.
    const both = parseServerArgs([
      "--port",
      "9002",
      "--config",
      path,
      "--model",
      "c.onnx",
      "--log-format",
      "text",
    ]);
    assert.deepEqual([both.port, both.host, both.models, both.logFormat], [
      9002,
      "0.0.0.0",
      ["c.onnx"],
      "text",
    ]);
    assert.equal(both.detectNeedsKey, true);
  });
});

Deno.test("api-key and api-key-file: one given as a flag replaces either in the file (no 'both' error)", async () => {
  await withConfig('api-key = "from-file"\n', async (path, dir) => {
    const keyFile = join(dir, "key");
    await Deno.writeTextFile(keyFile, "from-key-file\n");
    await Deno.chmod(keyFile, 0o600);
    assert.equal(parseServerArgs(["--config", path, "--api-key-file", keyFile]).apiKey, "from-key-file");
    await Deno.writeTextFile(path, `api-key-file = "${keyFile}"\n`);
    assert.equal(parseServerArgs(["--config", path]).apiKey, "from-key-file", "api-key-file in the file");
    assert.equal(parseServerArgs(["--config", path, "--api-key", "flag"]).apiKey, "flag");
    assert.throws(() => parseServerArgs(["--api-key", "x", "--api-key-file", keyFile]), /not both/);
  });
});

Deno.test("a config file with an unknown key, a wrong type or bad TOML is refused with a clear message", async () => {
  await withConfig('prot = 8000\nhost = "x"\nconfig = "other.toml"\n', (path) => {
    assert.throws(
      () => parseServerArgs(["--config", path]),
      (err: Error) => {
        assert.match(
          err.message,
          new RegExp(`^--config ${path}: unknown key 'prot' \\(keys are the serve flags: host,`),
        );
        assert.match(err.message, /unknown key 'config'/);
        return true;
      },
    );
  });
  await withConfig('detect-needs-key = "yes"\nport = [1]\nmodel = 3\n', (path) => {
    assert.throws(
      () => parseServerArgs(["--config", path]),
      /'detect-needs-key' must be true or false; 'port' must be a string or a number; 'model' must be a string or an array of strings/,
    );
  });
  await withConfig("port = 8000\nport = 8001\n", (path) => {
    assert.throws(() => parseServerArgs(["--config", path]), new RegExp(`^Error: --config ${path}: .*`, "s"));
  });
  assert.throws(
    () => parseServerArgs(["--config", "/nonexistent/kestrel.toml"]),
    /--config \/nonexistent\/kestrel.toml: /,
  );
  // Values still go through the schema: a bad one names the setting.
  await withConfig('log-format = "xml"\n', (path) => {
    assert.throws(() => parseServerArgs(["--config", path]), /logFormat/);
  });
});

Deno.test("a config file holding api-key is refused when every user may read it", async () => {
  await withConfig('api-key = "s3cret"\n', (path) => {
    assert.throws(() => parseServerArgs(["--config", path]), /readable by every user; chmod 600 it/);
  }, 0o644);
  await withConfig("port = 8000\n", (path) => {
    assert.equal(
      parseServerArgs(["--config", path]).port,
      8000,
      "a file without a key may be world-readable",
    );
  }, 0o644);
});
