import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { buildBundle, type BundleResult, projectVersion } from "../../src/bundle/build.ts";
import { ELF_MACHINE_NAMES, fileNativeKind } from "../../src/bundle/native.ts";
import { hostTarget, target, TARGET_NAMES, type TargetName } from "../../src/bundle/targets.ts";
import { ensureRuntimeDir } from "../../src/gpu/runtime_dir.ts";
import type { Detection } from "../../src/serving/postprocess.ts";
import { bigJpeg } from "../_helpers/big_jpeg.ts";
import { assertSameDetections } from "../_helpers/same_detections.ts";
import { type Arm64Emulation, arm64Emulation, REGISTER_QEMU } from "./_emulation.ts";
import { npmReachable, unshareAllowed, withLimit } from "./_preconditions.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const NPM = await npmReachable();
const UNSHARE = await unshareAllowed();
if (!NPM) console.warn("bundle tests skipped: the npm registry is not reachable (npm ping failed)");
else if (!UNSHARE) console.warn("offline bundle run skipped: unshare -n is not permitted here");
const ARM64 = NPM && Deno.build.arch === "x86_64" ? await arm64Emulation() : undefined;
if (ARM64 && "missing" in ARM64) console.warn(`aarch64 bundle run under QEMU skipped: ${ARM64.missing}`);
const EMULATION = ARM64 && !("missing" in ARM64) ? ARM64 : undefined;
/** A bundle is built and unpacked in well under this even on a loaded 2-core machine (about 50 s seen). */
const BUILD_LIMIT_MS = 300_000;
/**
 * The doctor, start, one detect, a burst and the drain of the unpacked bundle inside the namespace: a few seconds
 * natively, 24 s for the aarch64 bundle under QEMU on 2 quiet cores, 33-51 s on loaded ones (117 s at worst).
 */
const RUN_LIMIT_MS = 240_000;
ensureRuntimeDir();
const HAS_ADAPTER = (await navigator.gpu?.requestAdapter()) != null;
const IMAGE = join(ROOT, "tests/fixtures/shapes/images/shapes_0000.png");

/**
 * The libturbojpeg a target's bundle carries (--turbojpeg-lib) in these tests: arm64's where the emulation
 * brings one, so that the bundled copy is what the aarch64 run decodes JPEGs with.
 */
function turbojpegLib(name: TargetName): string | undefined {
  return name === "aarch64-unknown-linux-gnu" ? EMULATION?.turbojpegLib : undefined;
}

const out = NPM ? await Deno.makeTempDir({ prefix: "kestrel-bundle-test-" }) : "";
const builds = new Map<TargetName, Promise<{ result: BundleResult; dir: string }>>();
/** Builds and unpacks each target once for all tests of this file. */
function built(name: TargetName): Promise<{ result: BundleResult; dir: string }> {
  if (!builds.has(name)) {
    builds.set(
      name,
      (async () => {
        const result = await buildBundle(ROOT, target(name), out, turbojpegLib(name));
        const dir = join(out, name);
        await Deno.mkdir(dir);
        const tar = await new Deno.Command("tar", { args: ["-xzf", result.path, "-C", dir] }).output();
        assert.equal(tar.code, 0, new TextDecoder().decode(tar.stderr));
        const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
        console.log(
          `${name}: ${mb(result.bytes)} compressed; largest parts: ` +
            result.largest.map((p) => `${p.part} ${mb(p.bytes)}`).join(", "),
        );
        return { result, dir: join(dir, `kestrel-${await projectVersion(ROOT)}-${name}`) };
      })(),
    );
  }
  return builds.get(name)!;
}

async function* walk(dir: string): AsyncGenerator<{ path: string; isSymlink: boolean }> {
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) yield* walk(path);
    else yield { path, isSymlink: entry.isSymlink };
  }
}

/** The one entry of `dir` whose name starts with `prefix` (a package folder whose version the test need not know). */
async function only(dir: string, prefix: string): Promise<string> {
  const names = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).filter((n) =>
    n.startsWith(prefix)
  );
  assert.equal(names.length, 1, `${dir}: entries starting with ${prefix}: ${names.join(", ")}`);
  return join(dir, names[0]);
}

for (const name of TARGET_NAMES) {
  const { elfMachine, npmCpu } = target(name);
  Deno.test({
    name: `bundle ${name}: every native binary in it is a ${
      ELF_MACHINE_NAMES[elfMachine]
    } ELF, none another CPU's or OS's`,
    ignore: !NPM,
    sanitizeResources: false,
    fn: async () => {
      const { dir } = await withLimit(built(name), BUILD_LIMIT_MS, `building ${name}`);
      const elves: string[] = [];
      const foreign: string[] = [];
      const dangling: string[] = [];
      for await (const { path, isSymlink } of walk(dir)) {
        if (isSymlink) {
          await Deno.stat(path).catch(() => dangling.push(relative(dir, path)));
          continue;
        }
        const native = await fileNativeKind(path);
        if (native.kind === "none") continue;
        const rel = relative(dir, path);
        if (native.kind === "elf" && native.machine === elfMachine) elves.push(rel);
        else {foreign.push(
            `${rel}: ${
              native.kind === "elf" ? ELF_MACHINE_NAMES[native.machine] ?? native.machine : native.kind
            }`,
          );}
      }
      assert.deepEqual(foreign, [], "binaries of another CPU or OS");
      assert.deepEqual(dangling, [], "symlinks to nothing");
      // The binaries the app cannot run without must be there (and so were checked above).
      for (
        const needed of [
          /^bin\/deno$/,
          /onnxruntime-node\/bin\/napi-v6\/linux\/[^/]+\/onnxruntime_binding\.node$/,
          /onnxruntime-node\/bin\/napi-v6\/linux\/[^/]+\/libonnxruntime\.so/,
          new RegExp(`@img/sharp-linux-${npmCpu}/lib/sharp-linux-${npmCpu}(-[0-9.]+)?\\.node$`),
          new RegExp(`@img/sharp-libvips-linux-${npmCpu}/lib/libvips-cpp\\.so`),
        ]
      ) assert.ok(elves.some((p) => needed.test(p)), `no ${needed} in the bundle:\n${elves.join("\n")}`);
      // sharp finds its addon next to itself, and the addon finds libvips through its own link (its rpath).
      const packages = join(dir, "app/node_modules/.deno");
      const sharp = join(await only(packages, "sharp@"), "node_modules/@img");
      const addon = await Deno.realPath(join(sharp, `sharp-linux-${npmCpu}`));
      assert.equal(
        addon,
        await Deno.realPath(
          join(
            await only(packages, `@img+sharp-linux-${npmCpu}@`),
            "node_modules/@img",
            `sharp-linux-${npmCpu}`,
          ),
        ),
      );
      await Deno.stat(join(addon, `../sharp-libvips-linux-${npmCpu}/lib`));
    },
  });
}

/** The detections `deno task detect` gives for IMAGE from the checkout: what the bundle must answer too. */
async function checkoutDetections(): Promise<unknown> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", "detect", "--backend", "native", "--model", "models/default.onnx", IMAGE],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(code, 0, new TextDecoder().decode(stderr));
  return JSON.parse(new TextDecoder().decode(stdout)).detections;
}

/** Concurrent detects of a big JPEG against `--max-queue` MAX_QUEUE: more than the model can queue. */
const BURST = 24;
const MAX_QUEUE = 2;
/** How long the client waits for the draining server to turn /readyz to 503 after SIGTERM. */
const DRAIN_SEEN_MS = 10_000;

/**
 * Runs inside the empty network namespace with the bundled Deno, once the server is ready: posts IMAGE once, then
 * a burst of BURST posts of a big JPEG, then starts a detect whose body is only half sent, sends the server
 * SIGTERM, waits until it drains (/readyz 503), sends the rest of the body and reads the answer. Prints one line:
 * `{ detect: {status, body}, burst: [{status, retryAfter, code}], drained: {status, body} }`.
 */
const CLIENT = `
const [url, image, bigImage, serverPid, burst, drainSeenMs] = Deno.args;
const detect = (body, type) => fetch(url + "/v1/models/default/detect", {
  method: "POST", body, headers: { "content-type": type } });
const res = await detect(await Deno.readFile(image), "image/png");
const first = { status: res.status, body: await res.json() };

const big = await Deno.readFile(bigImage);
const answers = await Promise.all(Array.from({ length: Number(burst) }, async () => {
  const r = await detect(big, "image/jpeg");
  const body = await r.json();
  return { status: r.status, retryAfter: r.headers.get("retry-after"), code: body.error?.code ?? null };
}));

// A detect in flight when SIGTERM comes: its body is half sent over raw HTTP, the rest after the drain began.
const body = await Deno.readFile(image);
const { port } = new URL(url);
const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(port) });
const head = "POST /v1/models/default/detect HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nContent-Type: image/png\\r\\n" +
  "Content-Length: " + body.length + "\\r\\nExpect: 100-continue\\r\\nConnection: close\\r\\n\\r\\n";
await conn.write(new TextEncoder().encode(head));
// The server's 100 Continue: it has read the request's head and handed the request to the app, so the request is
// in flight and the drain waits for it. (A connection merely accepted is not: on a loaded box its head may still
// be unread when SIGTERM comes, and the server, with nothing in flight, closes its listener at once.)
let interim = "";
while (!interim.includes("\\r\\n\\r\\n")) {
  const chunk = new Uint8Array(256);
  const n = await conn.read(chunk);
  if (n === null) break;
  interim += new TextDecoder().decode(chunk.subarray(0, n));
}
if (!interim.startsWith("HTTP/1.1 100 ")) {
  console.error("the half-sent detect got no 100 Continue: " + JSON.stringify(interim));
  Deno.exit(94);
}
await conn.write(body.subarray(0, body.length >> 1));
Deno.kill(Number(serverPid), "SIGTERM");
const since = Date.now();
while ((await fetch(url + "/readyz").then(async (r) => (await r.body?.cancel(), r.status))) !== 503) {
  if (Date.now() - since > Number(drainSeenMs)) Deno.exit(95);
  await new Promise((resolve) => setTimeout(resolve, 50));
}
await conn.write(body.subarray(body.length >> 1));
const raw = await new Response(conn.readable).text();
const drained = {
  status: Number(/^HTTP\\/1\\.1 (\\d+) /.exec(raw)?.[1]),
  body: JSON.parse(raw.slice(raw.indexOf("\\r\\n\\r\\n") + 4)),
};
console.log(JSON.stringify({ detect: first, burst: answers, drained }));
`;

/**
 * Inside `unshare -mn` (loopback only) and `env -i` (no Deno on PATH, no DENO_DIR, a fresh HOME): the server from
 * the unpacked bundle (bind-mounted read-only): its doctor, then the server with `--max-queue`, bin/kestrel
 * wait-ready, and CLIENT from the bundled Deno (a detect, a burst, SIGTERM during a detect). The script prints
 * `doctor=<status>`, the client's answers, `exit=<server status>`.
 */
const SCRIPT = `
ip link set lo up || exit 90
# Read-only, as under systemd's ProtectSystem=strict: nothing may need to write into the bundle. The mount is
# private to this namespace; unmounting on exit still guards against a host whose mounts propagate anyway.
mount --make-rprivate / || exit 93
mount --bind "$B" "$B" && mount -o remount,bind,ro "$B" || exit 93
trap 'umount "$B"' EXIT
"$B/bin/kestrel" doctor --data-dir "$W/data" >"$W/doctor.txt" 2>&1
doctor=$?
echo "doctor=$doctor"
# 1 is a failed check; anything else a crash, which the server would repeat (and wait-ready wait out).
[ $doctor -le 1 ] || exit 97
export KESTREL_PORT=8199 KESTREL_BACKEND=native KESTREL_READY_TIMEOUT=120
"$B/bin/kestrel" serve --data-dir "$W/data" --max-queue "$MAX_QUEUE" 2>"$W/server.log" &
pid=$!
"$B/bin/kestrel" wait-ready || { kill -KILL $pid; exit 91; }
"$B/bin/deno" run -A --no-config "$W/client.ts" http://127.0.0.1:8199 "$IMAGE" "$W/big.jpg" $pid "$BURST" \
  "$DRAIN_SEEN_MS" || { kill -KILL $pid; exit 92; }
# The client sent SIGTERM; the drain is bounded by the default --drain-seconds 10.
i=0
while kill -0 $pid 2>/dev/null && [ $i -lt 150 ]; do sleep 0.1; i=$((i + 1)); done
kill -KILL $pid 2>/dev/null
wait $pid
echo "exit=$?"
`;

/** The doctor's checks that need a WebGPU adapter: the only ones it may fail where there is none. */
const WEBGPU_CHECKS = ["webgpu adapter", "conv kernels", "self-test training step"];

/**
 * How this machine runs `name`'s bundle: natively (its own CPU), under QEMU (the aarch64 one on x86_64), or not
 * at all (undefined; the warnings above say why).
 */
function bundleRunner(name: TargetName): { emulation?: Arm64Emulation } | undefined {
  if (name === hostTarget().name) return UNSHARE ? {} : undefined;
  return EMULATION ? { emulation: EMULATION } : undefined;
}

/**
 * Runs SCRIPT on the unpacked bundle `dir` in a fresh work folder. Under `emulation` the namespace is also a user
 * namespace whose binfmt_misc runs aarch64 binaries with qemu-aarch64 (REGISTER_QEMU), so that bin/kestrel, a
 * shell script, starts the bundled aarch64 Deno as it does on the box.
 */
async function runOffline(dir: string, emulation?: Arm64Emulation) {
  const work = await Deno.makeTempDir({ prefix: "kestrel-offline-" });
  await Deno.mkdir(join(work, "home"));
  await Deno.writeTextFile(join(work, "client.ts"), CLIENT);
  await Deno.writeFile(join(work, "big.jpg"), await bigJpeg());
  const { code, stdout, stderr } = await new Deno.Command("unshare", {
    args: [
      ...(emulation ? ["-U", "-r"] : []),
      "-mn",
      "env",
      "-i",
      "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
      `HOME=${work}/home`,
      `B=${dir}`,
      `W=${work}`,
      `IMAGE=${IMAGE}`,
      `MAX_QUEUE=${MAX_QUEUE}`,
      `BURST=${BURST}`,
      `DRAIN_SEEN_MS=${DRAIN_SEEN_MS}`,
      ...(emulation?.env ?? []),
      "sh",
      "-c",
      (emulation ? REGISTER_QEMU : "") + SCRIPT,
    ],
    cwd: work,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(RUN_LIMIT_MS),
  }).output();
  const log = await Deno.readTextFile(join(work, "server.log")).catch(() => "(no server log)");
  const doctor = await Deno.readTextFile(join(work, "doctor.txt")).catch(() => "(no doctor output)");
  const context = `script exit ${code}\n${new TextDecoder().decode(stderr)}\ndoctor:\n${doctor}\n` +
    `server log:\n${log}`;
  assert.equal(code, 0, context);
  const [doctorExit, answer, exit] = new TextDecoder().decode(stdout).trim().split("\n");
  await Deno.remove(work, { recursive: true });
  return { doctorExit, doctor, exit, context, answer };
}

/** An answer's detections as the server's Detection (class ids, confidences and boxes), to compare. */
function asDetections(json: unknown): Detection[] {
  return (json as { class_id: number; confidence: number; box: Detection["box"] }[]).map((d) => ({
    classId: d.class_id,
    confidence: d.confidence,
    box: d.box,
  }));
}

for (const name of TARGET_NAMES) {
  const runner = bundleRunner(name);
  const emulation = runner?.emulation;
  Deno.test({
    name: `the unpacked ${name} bundle${
      emulation ? ", under QEMU user-mode emulation (Cortex-A76)" : ""
    }, read-only, with no network, no Deno on PATH and no cache: passes its doctor, serves a detect${
      emulation ? " (the checkout's detections within the engines' float32 tolerance)" : ""
    }, sheds a burst with 503 + Retry-After under --max-queue 2, and on SIGTERM answers the detect in flight and exits 0`,
    ignore: !NPM || !runner,
    sanitizeOps: false,
    sanitizeResources: false,
    fn: async () => {
      const { dir } = await withLimit(built(name), BUILD_LIMIT_MS, `building ${name}`);
      const { doctorExit, doctor, exit, context, answer } = await runOffline(dir, emulation);
      assert.match(doctor, new RegExp(`^ok {3}platform: ${name}, `, "m"), doctor);
      assert.match(doctor, /^ok {3}self-test detect: /m, doctor);
      if (turbojpegLib(name)) {
        assert.ok(doctor.includes(`ok   jpeg decoder: turbojpeg (${dir}/lib/libturbojpeg.so.0)`), doctor);
      }
      // Without a WebGPU adapter (none under emulation: the sysroot has no Vulkan driver) the doctor rightly fails
      // the training checks; the bundle must not fail others.
      if (HAS_ADAPTER && !emulation) assert.equal(doctorExit, "doctor=0", doctor);
      const failed = [...doctor.matchAll(/^FAIL ([^:]+):/gm)].map((m) => m[1]);
      assert.deepEqual(failed.filter((check) => !WEBGPU_CHECKS.includes(check)), [], doctor);
      assert.equal(exit, "exit=0", `the server did not exit 0 on SIGTERM\n${context}`);
      const { detect, burst, drained }: {
        detect: { status: number; body: { model: unknown; detections: unknown[] } };
        burst: { status: number; retryAfter: string | null; code: string | null }[];
        drained: { status: number; body: { detections: unknown } };
      } = JSON.parse(answer);
      assert.equal(detect.status, 200, JSON.stringify(detect.body));
      assert.deepEqual(detect.body.model, { name: "default", version: 1 });
      assert.ok(
        detect.body.detections.length > 0,
        "the default model finds shapes in its own synthetic data",
      );
      const expected = await checkoutDetections();
      // The same onnxruntime build answers bit for bit; another CPU's kernels sum float32 in another order.
      const assertAsCheckout = (got: unknown, what: string) =>
        emulation
          ? assertSameDetections(asDetections(got), asDetections(expected), what)
          : assert.deepEqual(got, expected, what);
      assertAsCheckout(detect.body.detections, "the bundle answers as the checkout does");
      // Every request of the burst got an answer (Promise.all in the client), each a 200 or a shed 503.
      const ok = burst.filter((a) => a.status === 200);
      const shed = burst.filter((a) => a.status === 503);
      assert.equal(ok.length + shed.length, BURST, JSON.stringify(burst));
      assert.ok(ok.length >= 1 && shed.length >= 1, `200: ${ok.length}, 503: ${shed.length}`);
      for (const a of shed) assert.deepEqual(a, { status: 503, retryAfter: "1", code: "overloaded" });
      assert.equal(drained.status, 200, `the detect in flight at SIGTERM: ${JSON.stringify(drained)}`);
      assertAsCheckout(drained.body.detections, "the detect in flight is answered in full");
    },
  });
}

Deno.test({
  name: "bundle test cleanup",
  ignore: !NPM,
  fn: async () => {
    await Promise.allSettled(builds.values());
    await Deno.remove(out, { recursive: true });
  },
});
