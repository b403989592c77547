import assert from "node:assert/strict";
import { join } from "node:path";
import { addTurbojpegLib, writeDeployFiles } from "../../src/bundle/build.ts";
import { target } from "../../src/bundle/targets.ts";
import { createImageDecoder } from "../../src/image/decode.ts";
import { writeFakeElf } from "./_elf.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
/** Debian's libturbojpeg0 on x86_64, where this box has it: the copy must still load. */
const SYSTEM_LIB = "/usr/lib/x86_64-linux-gnu/libturbojpeg.so.0";
const hasSystemLib = await Deno.stat(SYSTEM_LIB).then(() => Deno.build.arch === "x86_64", () => false);
/** The launcher is a shell script around one exec: milliseconds. */
const LAUNCH_LIMIT_MS = 10_000;

Deno.test("--turbojpeg-lib: the bundle carries the target's libturbojpeg in lib/ and refuses another CPU's", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-turbojpeg-lib-" });
  const lib = hasSystemLib
    ? SYSTEM_LIB
    : await writeFakeElf(join(dir, "fake.so"), target("x86_64-unknown-linux-gnu").elfMachine);
  await addTurbojpegLib(join(dir, "x64"), target("x86_64-unknown-linux-gnu"), lib);
  const copied = join(dir, "x64", "lib", "libturbojpeg.so.0");
  assert.deepEqual(await Deno.readFile(copied), await Deno.readFile(lib));
  if (hasSystemLib) assert.equal(createImageDecoder(copied).jpegDecoder, `turbojpeg (${copied})`);
  await assert.rejects(
    addTurbojpegLib(join(dir, "arm"), target("aarch64-unknown-linux-gnu"), lib),
    /is not a aarch64-unknown-linux-gnu library \(ELF for x86-64\)/,
  );
  await assert.rejects(
    addTurbojpegLib(join(dir, "arm"), target("x86_64-unknown-linux-gnu"), join(ROOT, "deploy/kestrel")),
    /is not a x86_64-unknown-linux-gnu library \(none\)/,
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("bin/kestrel points KESTREL_TURBOJPEG_LIB at the bundle's libturbojpeg, unless the environment sets it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kestrel-turbojpeg-launch-" });
  await writeDeployFiles(ROOT, dir, "0.0.0");
  // A bin/deno that prints what the app would be told.
  await Deno.writeTextFile(
    join(dir, "bin/deno"),
    '#!/bin/sh\nprintf "%s" "${KESTREL_TURBOJPEG_LIB:-unset}"\n',
  );
  await Deno.chmod(join(dir, "bin/deno"), 0o755);
  const launch = async (env: Record<string, string>) => {
    const { code, stdout } = await new Deno.Command(join(dir, "bin/kestrel"), {
      args: ["detect"],
      env: { PATH: "/usr/bin:/bin", HOME: dir, ...env },
      clearEnv: true,
      stdout: "piped",
      signal: AbortSignal.timeout(LAUNCH_LIMIT_MS),
    }).output();
    assert.equal(code, 0);
    return new TextDecoder().decode(stdout);
  };
  assert.equal(await launch({}), "unset", "no lib/ in the bundle: the system's library, if any");
  await addTurbojpegLib(
    dir,
    target("x86_64-unknown-linux-gnu"),
    await writeFakeElf(join(dir, "fake.so"), target("x86_64-unknown-linux-gnu").elfMachine),
  );
  assert.equal(await launch({}), join(await Deno.realPath(dir), "lib/libturbojpeg.so.0"));
  assert.equal(await launch({ KESTREL_TURBOJPEG_LIB: "/opt/other.so" }), "/opt/other.so");
  await Deno.remove(dir, { recursive: true });
});
